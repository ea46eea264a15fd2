//! Parquet exports of splits (what the hub keeps on `refs/convert/parquet`): a parsed table's
//! columns as Arrow types, an IDX split's images as the `datasets` `Image` struct (PNG bytes and
//! a path) with its labels as a `ClassLabel`; the `datasets` features ride in the schema's
//! `huggingface` metadata, as the Hub's own exports carry them, so `datasets` reads them back.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::{IdxShape, Table, ViewerError};

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
    let schema = Arc::new(Schema::new_with_metadata(fields, huggingface(declared)));
    let mut out = writer(schema.clone())?;
    if !table.rows.is_empty() {
        let batch = RecordBatch::try_new(schema, columns).map_err(failed)?;
        out.write(&batch).map_err(failed)?;
    }
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
