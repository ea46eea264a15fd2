//! Parquet exports of splits (what the hub keeps on `refs/convert/parquet`): a parsed table's
//! columns as Arrow types, an IDX split's images as the `datasets` `Image` struct (PNG bytes and
//! a path) with its labels as a `ClassLabel`; the `datasets` features ride in the schema's
//! `huggingface` metadata, as the Hub's own exports carry them, so `datasets` reads them back.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::{Format, IdxShape, Table, ViewerError};

/// Rows per row group of an export (the Hub's exports use about this many for tabular data).
const ROW_GROUP_ROWS: usize = 100_000;

fn failed(e: impl std::fmt::Display) -> ViewerError {
    ViewerError::Unsupported(format!("writing Parquet: {e}"))
}

fn writer(schema: Arc<Schema>) -> Result<ArrowWriter<Vec<u8>>, ViewerError> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROW_GROUP_ROWS)).build();
    ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(failed)
}

/// The schema metadata that carries `datasets` features.
fn huggingface(features: serde_json::Map<String, Value>) -> HashMap<String, String> {
    HashMap::from([("huggingface".to_string(), json!({ "info": { "features": features } }).to_string())])
}

/// A parsed table as one Parquet file: integer, float, boolean and string columns keep their
/// type; lists, objects and mixed columns are written as their JSON text.
pub fn table_parquet(table: &Table) -> Result<Vec<u8>, ViewerError> {
    let (fields, columns, declared) = table_columns(table);
    let schema = Arc::new(Schema::new_with_metadata(fields, huggingface(declared)));
    let mut out = writer(schema.clone())?;
    if !table.rows.is_empty() {
        let batch = RecordBatch::try_new(schema, columns).map_err(failed)?;
        out.write(&batch).map_err(failed)?;
    }
    out.into_inner().map_err(failed)
}

/// A table's columns as Arrow fields and arrays, with their `datasets` features.
fn table_columns(table: &Table) -> (Vec<Field>, Vec<ArrayRef>, serde_json::Map<String, Value>) {
    let features = table.features();
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut declared = serde_json::Map::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for (i, name) in table.columns.iter().enumerate() {
        let cells = table.rows.iter().map(|r| r.get(i).unwrap_or(&Value::Null));
        let dtype = features.get(i).and_then(|f| f["type"]["dtype"].as_str()).unwrap_or("");
        let (data_type, array): (DataType, ArrayRef) = match dtype {
            "int64" => {
                let mut b = Int64Builder::new();
                cells.for_each(|v| b.append_option(v.as_i64()));
                (DataType::Int64, Arc::new(b.finish()))
            }
            "float64" => {
                let mut b = Float64Builder::new();
                cells.for_each(|v| b.append_option(v.as_f64()));
                (DataType::Float64, Arc::new(b.finish()))
            }
            "bool" => {
                let mut b = BooleanBuilder::new();
                cells.for_each(|v| b.append_option(v.as_bool()));
                (DataType::Boolean, Arc::new(b.finish()))
            }
            _ => {
                let mut b = StringBuilder::new();
                for v in cells {
                    match v {
                        Value::Null => b.append_null(),
                        Value::String(s) => b.append_value(s),
                        other => b.append_value(other.to_string()),
                    }
                }
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        let feature =
            if data_type == DataType::Utf8 { json!({ "dtype": "string", "_type": "Value" }) } else { features[i]["type"].clone() };
        declared.insert(name.clone(), feature);
        fields.push(Field::new(name, data_type, true));
        columns.push(array);
    }
    (fields, columns, declared)
}

/// An image folder as one Parquet file: each image's bytes and file name in the `Image` struct,
/// then its label (a `ClassLabel`) or its metadata's columns. `images` are the folder's images'
/// bytes, in its order.
pub fn image_folder_parquet(folder: &crate::ImageFolder, images: Vec<Vec<u8>>) -> Result<Vec<u8>, ViewerError> {
    let image_fields = Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)]);
    let (mut fields, mut columns, mut declared) = table_columns(&folder.table);
    if let Some(names) = &folder.classes {
        declared.insert("label".into(), json!({ "names": names, "_type": "ClassLabel" }));
    }
    let mut bytes = BinaryBuilder::new();
    images.iter().for_each(|b| bytes.append_value(b));
    let names = StringArray::from_iter_values(folder.images.iter().map(|p| p.rsplit('/').next().unwrap_or(p)));
    let image = StructArray::try_new(image_fields.clone(), vec![Arc::new(bytes.finish()), Arc::new(names)], None).map_err(failed)?;
    fields.insert(0, Field::new("image", DataType::Struct(image_fields), true));
    columns.insert(0, Arc::new(image));
    let mut features = serde_json::Map::from_iter([("image".to_string(), json!({ "_type": "Image" }))]);
    features.extend(declared);
    let schema = Arc::new(Schema::new_with_metadata(fields, huggingface(features)));
    let mut out = writer(schema.clone())?;
    if !folder.images.is_empty() {
        out.write(&RecordBatch::try_new(schema, columns).map_err(failed)?).map_err(failed)?;
    }
    out.into_inner().map_err(failed)
}

/// A batch inference's predictions as one Parquet file: each example's position in its split
/// (`row`), the predicted class (`prediction`) and its probability (`score`), and the example's
/// own label (`label`); both classes are `ClassLabel`s named by `names`. The columns are of
/// equal length (the caller checked).
pub fn predictions_parquet(
    rows: Vec<i64>,
    predictions: &[u32],
    scores: Vec<f32>,
    labels: &[u32],
    names: &[String],
) -> Result<Vec<u8>, ViewerError> {
    let class = json!({ "names": names, "_type": "ClassLabel" });
    let features = serde_json::Map::from_iter([
        ("row".to_string(), json!({ "dtype": "int64", "_type": "Value" })),
        ("prediction".to_string(), class.clone()),
        ("score".to_string(), json!({ "dtype": "float32", "_type": "Value" })),
        ("label".to_string(), class),
    ]);
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("row", DataType::Int64, false),
            Field::new("prediction", DataType::Int64, false),
            Field::new("score", DataType::Float32, false),
            Field::new("label", DataType::Int64, false),
        ],
        huggingface(features),
    ));
    let classes = |values: &[u32]| -> ArrayRef { Arc::new(Int64Array::from_iter_values(values.iter().map(|&c| i64::from(c)))) };
    let columns: Vec<ArrayRef> =
        vec![Arc::new(Int64Array::from(rows)), classes(predictions), Arc::new(arrow_array::Float32Array::from(scores)), classes(labels)];
    let mut out = writer(schema.clone())?;
    out.write(&RecordBatch::try_new(schema, columns).map_err(failed)?).map_err(failed)?;
    out.into_inner().map_err(failed)
}

/// An IDX split written block by block: each image a PNG in the `Image` struct, each label a
/// `ClassLabel` index.
pub struct IdxParquet {
    shape: IdxShape,
    schema: Arc<Schema>,
    image_fields: Fields,
    out: ArrowWriter<Vec<u8>>,
}

impl IdxParquet {
    /// A writer for `shape`'s images with labels `0..classes`.
    pub fn new(shape: IdxShape, classes: u8) -> Result<IdxParquet, ViewerError> {
        let image_fields = Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)]);
        let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
        let features = serde_json::Map::from_iter([
            ("image".to_string(), json!({ "_type": "Image" })),
            ("label".to_string(), json!({ "names": names, "_type": "ClassLabel" })),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(
            vec![Field::new("image", DataType::Struct(image_fields.clone()), true), Field::new("label", DataType::Int64, true)],
            huggingface(features),
        ));
        let out = writer(schema.clone())?;
        Ok(IdxParquet { shape, schema, image_fields, out })
    }

    /// Appends images (their pixels, back to back) and their labels.
    pub fn push(&mut self, pixels: &[u8], labels: &[u8]) -> Result<(), ViewerError> {
        let size = self.shape.pixels() as usize;
        let mut bytes = BinaryBuilder::new();
        for (i, _) in labels.iter().enumerate() {
            let image = pixels.get(i * size..(i + 1) * size).ok_or_else(|| failed("fewer pixels than labels"))?;
            bytes.append_value(crate::png_gray(self.shape.cols, self.shape.rows, image));
        }
        let paths: ArrayRef = Arc::new(StringArray::new_null(labels.len()));
        let images = StructArray::try_new(self.image_fields.clone(), vec![Arc::new(bytes.finish()), paths], None).map_err(failed)?;
        let labels: ArrayRef = Arc::new(Int64Array::from_iter_values(labels.iter().map(|&l| i64::from(l))));
        let batch = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(images), labels]).map_err(failed)?;
        self.out.write(&batch).map_err(failed)
    }

    pub fn finish(self) -> Result<Vec<u8>, ViewerError> {
        self.out.into_inner().map_err(failed)
    }
}

/// Rows converted at a time by [`convert_stream`]: what bounds its memory, whatever the size.
const STREAM_ROWS: usize = 50_000;

/// What every value of a column has been so far (each flag stays true while every value fits).
#[derive(Clone, Copy)]
struct Fits {
    seen: bool,
    int: bool,
    float: bool,
    bool: bool,
    string: bool,
}

impl Fits {
    const ANY: Fits = Fits { seen: false, int: true, float: true, bool: true, string: true };

    fn see(&mut self, cell: &Cell) {
        match cell {
            Cell::Text(t) if t.is_empty() => {}
            Cell::Text(t) => {
                self.seen = true;
                self.int &= t.parse::<i64>().is_ok();
                self.float &= t.parse::<f64>().is_ok();
                self.bool &= t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false");
            }
            Cell::Json(Value::Null) => {}
            Cell::Json(v) => {
                self.seen = true;
                self.int &= v.is_i64() || v.is_u64();
                self.float &= v.is_number();
                self.bool &= v.is_boolean();
                self.string &= v.is_string();
            }
        }
    }

    /// The Arrow type of the column: as [`crate::parse`] types a column it reads whole.
    fn data_type(self) -> DataType {
        match self {
            Fits { seen: false, .. } => DataType::Utf8,
            Fits { int: true, .. } => DataType::Int64,
            Fits { float: true, .. } => DataType::Float64,
            Fits { bool: true, .. } => DataType::Boolean,
            _ => DataType::Utf8,
        }
    }
}

/// A cell as read: CSV/TSV/text cells are text, JSON Lines cells are JSON values.
enum Cell {
    Text(String),
    Json(Value),
}

impl Cell {
    fn int(&self) -> Option<i64> {
        match self {
            Cell::Text(t) => t.parse().ok(),
            Cell::Json(v) => v.as_i64(),
        }
    }
    fn float(&self) -> Option<f64> {
        match self {
            Cell::Text(t) => t.parse().ok(),
            Cell::Json(v) => v.as_f64(),
        }
    }
    fn boolean(&self) -> Option<bool> {
        match self {
            Cell::Text(t) if t.is_empty() => None,
            Cell::Text(t) => Some(t.eq_ignore_ascii_case("true")),
            Cell::Json(v) => v.as_bool(),
        }
    }
    fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t.clone()),
            Cell::Json(Value::Null) => None,
            Cell::Json(Value::String(s)) => Some(s.clone()),
            Cell::Json(v) => Some(v.to_string()),
        }
    }
}

/// Calls `row` with each row of `file` as (column index, cell) pairs, learning new columns into
/// `columns` (CSV/TSV: its header; JSON Lines: keys in order of appearance; text: `text`).
fn each_row(
    file: &str,
    format: Format,
    reader: impl Read,
    columns: &mut Vec<String>,
    mut row: impl FnMut(Vec<(usize, Cell)>) -> Result<(), ViewerError>,
) -> Result<(), ViewerError> {
    let fail = |message: String| ViewerError::Parse { file: file.to_string(), message };
    let index_of = |columns: &mut Vec<String>, name: &str| match columns.iter().position(|c| c == name) {
        Some(i) => i,
        None => {
            columns.push(name.to_string());
            columns.len() - 1
        }
    };
    match format {
        Format::Csv | Format::Tsv => {
            let mut csv = csv::ReaderBuilder::new().delimiter(if format == Format::Tsv { b'\t' } else { b',' }).from_reader(reader);
            let header: Vec<usize> =
                csv.headers().map_err(|e| fail(e.to_string()))?.iter().map(|h| index_of(columns, h)).collect::<Vec<_>>();
            for record in csv.records() {
                let record = record.map_err(|e| fail(e.to_string()))?;
                row(header.iter().copied().zip(record.iter().map(|c| Cell::Text(c.to_string()))).collect())?;
            }
        }
        Format::JsonLines => {
            for (n, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let line = line.map_err(|e| fail(format!("line {}: {e}", n + 1)))?;
                if line.trim().is_empty() {
                    continue;
                }
                // Keys in file order, as a whole parse keeps them.
                let item: crate::Item = serde_json::from_str(&line).map_err(|e| fail(format!("line {}: {e}", n + 1)))?;
                let object = item.object().map_err(|found| fail(format!("line {}: expected a JSON object, found {found}", n + 1)))?;
                row(object.into_iter().map(|(k, v)| (index_of(columns, &k), Cell::Json(v))).collect())?;
            }
        }
        Format::Text => {
            let text = index_of(columns, "text");
            for (n, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let line = line.map_err(|e| fail(format!("line {}: {e}", n + 1)))?;
                row(vec![(text, Cell::Text(line))])?;
            }
        }
        Format::Json | Format::Parquet | Format::Image => {
            return Err(fail("a split this large is converted from CSV, TSV, JSON Lines or text files only".into()));
        }
    }
    Ok(())
}

/// Converts the files of a split, of any size, into one Parquet file written to `out`, reading
/// each file twice through `open` (once to type its columns as [`crate::parse`] would, once to
/// write them) and holding [`STREAM_ROWS`] rows at a time. Returns the rows written.
pub fn convert_stream<R: Read, W: Write + Send>(
    files: &[(String, Format)],
    mut open: impl FnMut(&str) -> Result<R, ViewerError>,
    out: W,
) -> Result<u64, ViewerError> {
    let mut columns: Vec<String> = Vec::new();
    let mut fits: Vec<Fits> = Vec::new();
    for (file, format) in files {
        each_row(file, *format, open(file)?, &mut columns, |cells| {
            for (i, cell) in cells {
                if i >= fits.len() {
                    fits.resize(i + 1, Fits::ANY);
                }
                fits[i].see(&cell);
            }
            Ok(())
        })?;
    }
    fits.resize(columns.len(), Fits::ANY);
    let types: Vec<DataType> = fits.iter().map(|f| f.data_type()).collect();
    let features: serde_json::Map<String, Value> = columns
        .iter()
        .zip(&types)
        .map(|(c, t)| {
            let dtype = match t {
                DataType::Int64 => "int64",
                DataType::Float64 => "float64",
                DataType::Boolean => "bool",
                _ => "string",
            };
            (c.clone(), json!({ "dtype": dtype, "_type": "Value" }))
        })
        .collect();
    let fields: Vec<Field> = columns.iter().zip(&types).map(|(c, t)| Field::new(c, t.clone(), true)).collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, huggingface(features)));
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROW_GROUP_ROWS)).build();
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(failed)?;
    let mut block: Vec<Vec<Option<Cell>>> = Vec::with_capacity(STREAM_ROWS);
    let mut written = 0u64;
    let flush = |block: &mut Vec<Vec<Option<Cell>>>, writer: &mut ArrowWriter<W>| -> Result<(), ViewerError> {
        if block.is_empty() {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = types
            .iter()
            .enumerate()
            .map(|(i, t)| -> ArrayRef {
                fn cell(r: &[Option<Cell>], i: usize) -> Option<&Cell> {
                    r.get(i).and_then(Option::as_ref)
                }
                match t {
                    DataType::Int64 => Arc::new(Int64Array::from_iter(block.iter().map(|r| cell(r, i).and_then(Cell::int)))),
                    DataType::Float64 => {
                        Arc::new(arrow_array::Float64Array::from_iter(block.iter().map(|r| cell(r, i).and_then(Cell::float))))
                    }
                    DataType::Boolean => {
                        Arc::new(arrow_array::BooleanArray::from_iter(block.iter().map(|r| cell(r, i).and_then(Cell::boolean))))
                    }
                    _ => Arc::new(StringArray::from_iter(block.iter().map(|r| cell(r, i).and_then(Cell::text)))),
                }
            })
            .collect();
        writer.write(&RecordBatch::try_new(schema.clone(), arrays).map_err(failed)?).map_err(failed)?;
        block.clear();
        Ok(())
    };
    for (file, format) in files {
        let mut known = columns.clone();
        each_row(file, *format, open(file)?, &mut known, |cells| {
            let mut row: Vec<Option<Cell>> = (0..columns.len()).map(|_| None).collect();
            for (i, cell) in cells {
                if let Some(slot) = row.get_mut(i) {
                    *slot = Some(cell);
                }
            }
            block.push(row);
            written += 1;
            if block.len() >= STREAM_ROWS {
                flush(&mut block, &mut writer)?;
            }
            Ok(())
        })?;
    }
    flush(&mut block, &mut writer)?;
    writer.close().map_err(failed)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_conversion_types_and_orders_columns_as_a_whole_parse_does() {
        let files = [("a.jsonl".to_string(), Format::JsonLines), ("b.jsonl".to_string(), Format::JsonLines)];
        let contents = |name: &str| -> &'static [u8] {
            if name == "a.jsonl" { b"{\"zeta\": 1, \"alpha\": \"x\", \"f\": 1}\n" } else { b"{\"zeta\": 2, \"f\": 2.5, \"more\": true}\n" }
        };
        let mut out = Vec::new();
        let rows = convert_stream(&files, |name| Ok(contents(name)), &mut out).unwrap();
        assert_eq!(rows, 2);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out)).unwrap();
        let fields: Vec<(String, DataType)> = reader.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(
            fields,
            [
                ("zeta".into(), DataType::Int64),
                ("alpha".into(), DataType::Utf8),
                ("f".into(), DataType::Float64),
                ("more".into(), DataType::Boolean)
            ]
        );
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert!(batch.column(1).is_null(1) && batch.column(3).is_null(0), "missing keys are nulls");
        // A file that breaks mid-way is an error naming it, not a partial export.
        let broken = [("c.jsonl".to_string(), Format::JsonLines)];
        let err = convert_stream(&broken, |_| Ok(&b"{\"a\": 1}\n[2]\n"[..]), Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "c.jsonl: line 2: expected a JSON object, found an array");
    }
}
