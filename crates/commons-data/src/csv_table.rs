//! CSV tables with a header row and one named label column: every other column is a numeric
//! feature. Non-numeric cells and labels outside `0..num_classes` are errors naming row and column.

use std::path::Path;

use crate::DataError;

#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    pub feature_names: Vec<String>,
    /// Row-major, `rows * feature_names.len()` values.
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
}

impl CsvTable {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub fn row(&self, index: usize) -> Option<&[f32]> {
        let width = self.feature_names.len();
        self.features.get(index * width..(index + 1) * width)
    }
}

/// Read `path`; labels must be integers in `0..num_classes` when `num_classes` is given.
/// Rows are numbered from 1 for the first data row (the header is row 0).
pub fn read_csv(path: &Path, label_column: &str, num_classes: Option<usize>) -> Result<CsvTable, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::Format { path: path.to_path_buf(), message: e.to_string() })?;
    let headers =
        reader.headers().map_err(|e| DataError::Format { path: path.to_path_buf(), message: format!("header row: {e}") })?.clone();
    let label_index = headers.iter().position(|h| h == label_column).ok_or_else(|| DataError::Format {
        path: path.to_path_buf(),
        message: format!("no label column '{label_column}'; columns are {:?}", headers.iter().collect::<Vec<_>>()),
    })?;
    let feature_names: Vec<String> = headers.iter().enumerate().filter(|(i, _)| *i != label_index).map(|(_, h)| h.to_string()).collect();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = record.map_err(|e| DataError::Format { path: path.to_path_buf(), message: format!("row {row}: {e}") })?;
        let cell_error =
            |column: &str, message: String| DataError::Table { path: path.to_path_buf(), row, column: column.to_string(), message };
        if record.len() != headers.len() {
            return Err(cell_error(label_column, format!("{} fields, header has {}", record.len(), headers.len())));
        }
        for (c, cell) in record.iter().enumerate() {
            let column = headers.get(c).unwrap_or_default();
            if c == label_index {
                let label: usize = cell.parse().map_err(|_| cell_error(column, format!("label {cell:?} is not a non-negative integer")))?;
                if let Some(classes) = num_classes
                    && label >= classes
                {
                    return Err(cell_error(column, format!("label {label} out of range 0..{classes}")));
                }
                labels.push(label);
            } else {
                let value: f32 = cell.parse().map_err(|_| cell_error(column, format!("value {cell:?} is not a number")))?;
                features.push(value);
            }
        }
    }
    Ok(CsvTable { feature_names, features, labels })
}
