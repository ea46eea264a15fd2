//! Parquet splits, read by range: a file's footer (its metadata and page offsets) once, then only
//! the row groups, and within them the pages, that hold the rows asked for. The viewer never
//! holds a Parquet file, so a page of rows deep in a file of any size costs a few pages.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, LargeBinaryArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use serde_json::{Map, Value, json};

use crate::{MAX_CELLS, Table, ViewerError};

/// Ranged reads of one stored file.
pub trait ByteSource: Send + Sync + 'static {
    /// Bytes `range` of the file; an error is a message for the caller.
    fn read(&self, range: Range<u64>) -> BoxFuture<'static, Result<Bytes, String>>;
}

/// Largest footer (metadata) a file may declare: past this it is refused, not read.
pub const FOOTER_LIMIT: u64 = 16 << 20;
/// Most compressed bytes of one row group's columns read for a page when the file has no page
/// index (older writers, pyarrow's default): without one a page read is a whole column chunk.
pub const ROW_GROUP_LIMIT: u64 = 128 << 20;
/// Longest string cell answered whole; longer ones are cut and listed in `truncated_cells`.
pub const CELL_CHARS: usize = 10_000;
/// Largest image inlined in a row (as a `data:` URI).
pub const IMAGE_BYTES: usize = 1 << 20;
/// Rows of the sample that `/statistics` computes over (`partial` when a split has more).
pub const STATISTICS_ROWS: usize = 50_000;
/// Compressed bytes of row groups read for statistics.
pub const STATISTICS_BYTES: u64 = 64 << 20;

/// A row read: its cells in column order, and the names of the cells cut short.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cells: Vec<Value>,
    pub truncated: Vec<String>,
}

/// An open Parquet file: where to read it and its metadata (with the page offsets).
#[derive(Clone)]
pub struct ParquetFile {
    name: String,
    source: Arc<dyn ByteSource>,
    size: u64,
    meta: ArrowReaderMetadata,
}

/// The reader the parquet crate drives: reads through the source, metadata from the open file.
struct Reader {
    source: Arc<dyn ByteSource>,
    metadata: Option<Arc<ParquetMetaData>>,
}

fn external(message: String) -> ParquetError {
    ParquetError::External(message.into())
}

impl AsyncFileReader for Reader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.source.read(range).map(|r| r.map_err(external)).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        // The columns of a row group are read at once rather than one after another.
        let reads: Vec<_> = ranges.into_iter().map(|r| self.source.read(r)).collect();
        async move { futures::future::try_join_all(reads).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(&'a mut self, _: Option<&'a ArrowReaderOptions>) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let metadata = self.metadata.clone();
        async move { metadata.ok_or_else(|| external("the metadata is read when the file is opened".into())) }.boxed()
    }
}

impl ParquetFile {
    /// Opens `name` (`size` bytes, read through `source`): reads its footer and page index.
    pub async fn open(name: &str, source: Arc<dyn ByteSource>, size: u64) -> Result<ParquetFile, ViewerError> {
        let fail = |message: String| ViewerError::Parse { file: name.to_string(), message };
        if size < 12 {
            return Err(fail("too short to be a Parquet file".into()));
        }
        let tail = source.read(size - 8..size).await.map_err(&fail)?;
        if tail.len() != 8 {
            return Err(fail("the store answered a short read of the footer".into()));
        }
        if &tail[4..] != b"PAR1" {
            return Err(fail(if &tail[4..] == b"PARE" {
                "encrypted Parquet is not read".into()
            } else {
                "not a Parquet file (no PAR1 footer)".into()
            }));
        }
        let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        if footer > FOOTER_LIMIT || footer + 12 > size {
            return Err(fail(format!("a footer of {footer} bytes is more than the viewer reads")));
        }
        let mut reader = Reader { source: source.clone(), metadata: None };
        let metadata = ParquetMetaDataReader::new()
            // The offset index says where each page starts, so a page of rows reads its pages
            // only; the column index (page statistics) is not needed to page.
            .with_offset_index_policy(PageIndexPolicy::Optional)
            .with_column_index_policy(PageIndexPolicy::Skip)
            .with_prefetch_hint(Some(footer as usize + 8))
            .load_and_finish(&mut reader, size)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let meta = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new()).map_err(|e| fail(e.to_string()))?;
        Ok(ParquetFile { name: name.to_string(), source, size, meta })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Memory the open file holds (its metadata), for a cache's weight.
    pub fn memory(&self) -> usize {
        self.meta.metadata().memory_size()
    }

    pub fn num_rows(&self) -> u64 {
        self.meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    pub fn columns(&self) -> Vec<String> {
        self.meta.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    /// `FeatureItem`s: the `datasets` features the file's own `huggingface` metadata states
    /// (class names and all), else ones derived from its Arrow types.
    pub fn features(&self) -> Vec<Value> {
        let schema = self.meta.schema();
        let declared: Option<Value> =
            schema.metadata().get("huggingface").and_then(|m| serde_json::from_str::<Value>(m).ok()).map(|m| m["info"]["features"].clone());
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let feature = declared.as_ref().and_then(|d| d.get(field.name())).filter(|f| f.is_object()).cloned();
                json!({ "feature_idx": i, "name": field.name(), "type": feature.unwrap_or_else(|| feature_of(field)) })
            })
            .collect()
    }

    fn fail(&self, message: String) -> ViewerError {
        ViewerError::Parse { file: self.name.clone(), message }
    }

    /// Rows `offset..offset + length` of this file (fewer at its end).
    pub async fn rows(&self, offset: u64, length: usize) -> Result<Vec<Row>, ViewerError> {
        let metadata = self.meta.metadata().clone();
        let end = offset.saturating_add(length as u64).min(self.num_rows());
        if offset >= end {
            return Ok(Vec::new());
        }
        // The row groups that hold the rows, and the offset into the first of them.
        let (mut first_row, mut groups, mut skip) = (0u64, Vec::new(), 0u64);
        for (i, group) in metadata.row_groups().iter().enumerate() {
            let rows = group.num_rows().max(0) as u64;
            if first_row + rows > offset && first_row < end {
                if groups.is_empty() {
                    skip = offset - first_row;
                }
                groups.push(i);
            }
            first_row += rows;
        }
        if !has_page_offsets(&metadata) {
            let bytes: i64 = groups.iter().map(|&g| metadata.row_group(g).compressed_size()).sum();
            if bytes.max(0) as u64 > ROW_GROUP_LIMIT {
                return Err(ViewerError::TooBig(format!(
                    "{}: rows {offset}..{end} lie in row groups of {bytes} bytes and the file has no page index; the viewer reads at most {ROW_GROUP_LIMIT} bytes of them",
                    self.name
                )));
            }
        }
        let batches = self.read(groups, skip as usize, (end - offset) as usize).await?;
        let mut rows = Vec::with_capacity((end - offset) as usize);
        for batch in &batches {
            rows.extend(cells(batch).map_err(|e| self.fail(e))?);
        }
        Ok(rows)
    }

    async fn read(&self, groups: Vec<usize>, skip: usize, limit: usize) -> Result<Vec<RecordBatch>, ViewerError> {
        let reader = Reader { source: self.source.clone(), metadata: Some(self.meta.metadata().clone()) };
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.meta.clone())
            .with_row_groups(groups)
            .with_offset(skip)
            .with_limit(limit)
            .with_batch_size(limit.clamp(1, 1024))
            .build()
            .map_err(|e| self.fail(e.to_string()))?;
        stream.try_collect().await.map_err(|e| self.fail(e.to_string()))
    }

    /// The first rows of the file as a table, for statistics: at most `rows` rows from the row
    /// groups whose compressed bytes fit [`STATISTICS_BYTES`] (at least the first); and whether
    /// that is all the file holds.
    pub async fn sample(&self, rows: usize) -> Result<(Table, bool), ViewerError> {
        let metadata = self.meta.metadata().clone();
        let columns = self.columns().len().max(1);
        let limit = rows.min(MAX_CELLS / columns);
        let (mut groups, mut bytes, mut held) = (Vec::new(), 0u64, 0u64);
        for (i, group) in metadata.row_groups().iter().enumerate() {
            let size = group.compressed_size().max(0) as u64;
            if !groups.is_empty() && (bytes + size > STATISTICS_BYTES || held >= limit as u64) {
                break;
            }
            if groups.is_empty() && !has_page_offsets(&metadata) && size > ROW_GROUP_LIMIT {
                return Err(ViewerError::TooBig(format!("{}: a first row group of {size} bytes and no page index", self.name)));
            }
            groups.push(i);
            bytes += size;
            held += group.num_rows().max(0) as u64;
        }
        let batches = self.read(groups, 0, limit).await?;
        let mut table = Table { columns: self.columns(), rows: Vec::new() };
        for batch in &batches {
            table.rows.extend(cells(batch).map_err(|e| self.fail(e))?.into_iter().map(|row| row.cells));
        }
        let whole = table.rows.len() as u64 == self.num_rows();
        Ok((table, whole))
    }
}

/// Whether the file's offset index (where each page starts) was read: without it, a page of rows
/// reads whole column chunks.
fn has_page_offsets(metadata: &ParquetMetaData) -> bool {
    metadata.page_index().is_some_and(|p| p.has_offset_indexes())
}

/// The `datasets` feature of an Arrow field.
fn feature_of(field: &Field) -> Value {
    let value = |dtype: &str| json!({ "dtype": dtype, "_type": "Value" });
    match field.data_type() {
        DataType::Boolean => value("bool"),
        DataType::Int8 => value("int8"),
        DataType::Int16 => value("int16"),
        DataType::Int32 => value("int32"),
        DataType::Int64 => value("int64"),
        DataType::UInt8 => value("uint8"),
        DataType::UInt16 => value("uint16"),
        DataType::UInt32 => value("uint32"),
        DataType::UInt64 => value("uint64"),
        DataType::Float16 => value("float16"),
        DataType::Float32 => value("float32"),
        DataType::Float64 => value("float64"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => value("string"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => value("binary"),
        DataType::Date32 => value("date32"),
        DataType::Date64 => value("date64"),
        DataType::Timestamp(unit, _) => value(&format!("timestamp[{}]", unit_name(unit))),
        DataType::Dictionary(_, inner) => feature_of(&Field::new(field.name(), (**inner).clone(), true)),
        DataType::List(inner) | DataType::LargeList(inner) | DataType::FixedSizeList(inner, _) => {
            json!({ "feature": feature_of(inner), "_type": "List" })
        }
        DataType::Struct(fields) if is_image(fields) => json!({ "_type": "Image" }),
        DataType::Struct(fields) => Value::Object(fields.iter().map(|f| (f.name().clone(), feature_of(f))).collect()),
        other => value(&other.to_string().to_ascii_lowercase()),
    }
}

fn unit_name(unit: &arrow_schema::TimeUnit) -> &'static str {
    match unit {
        arrow_schema::TimeUnit::Second => "s",
        arrow_schema::TimeUnit::Millisecond => "ms",
        arrow_schema::TimeUnit::Microsecond => "us",
        arrow_schema::TimeUnit::Nanosecond => "ns",
    }
}

/// The `datasets` `Image` feature's storage: a struct of the encoded bytes and a path.
fn is_image(fields: &arrow_schema::Fields) -> bool {
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    names.len() == 2
        && fields.iter().any(|f| f.name() == "bytes" && matches!(f.data_type(), DataType::Binary | DataType::LargeBinary))
        && names.contains(&"path")
}

/// The cells of a batch's rows in column order, long strings cut (and named), images as
/// `{src, height, width}`.
fn cells(batch: &RecordBatch) -> Result<Vec<Row>, String> {
    let schema: SchemaRef = batch.schema();
    let mut writer = arrow_json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow_json::writer::JsonArray>(Vec::new());
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let objects: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner()).map_err(|e| e.to_string())?;
    let mut rows = Vec::with_capacity(objects.len());
    for (r, mut object) in objects.into_iter().enumerate() {
        let mut row = Vec::with_capacity(schema.fields().len());
        let mut truncated = Vec::new();
        for (c, field) in schema.fields().iter().enumerate() {
            let mut cell = object.remove(field.name()).unwrap_or(Value::Null);
            if let DataType::Struct(fields) = field.data_type()
                && is_image(fields)
            {
                cell = image_cell(batch.column(c), r);
            } else if let Value::String(text) = &cell
                && text.len() > CELL_CHARS
            {
                cell = Value::String(text.chars().take(CELL_CHARS).collect());
                truncated.push(field.name().clone());
            }
            row.push(cell);
        }
        rows.push(Row { cells: row, truncated });
    }
    Ok(rows)
}

/// An `Image` cell: its bytes as a `data:` URI, with the size when it is a PNG.
fn image_cell(column: &ArrayRef, row: usize) -> Value {
    let Some(images) = column.as_any().downcast_ref::<StructArray>() else { return Value::Null };
    if images.is_null(row) {
        return Value::Null;
    }
    let Some(bytes) = images.column_by_name("bytes") else { return Value::Null };
    let data: Option<&[u8]> = if let Some(b) = bytes.as_any().downcast_ref::<BinaryArray>() {
        (!b.is_null(row)).then(|| b.value(row))
    } else if let Some(b) = bytes.as_any().downcast_ref::<LargeBinaryArray>() {
        (!b.is_null(row)).then(|| b.value(row))
    } else {
        None
    };
    let Some(data) = data.filter(|d| d.len() <= IMAGE_BYTES) else { return Value::Null };
    let (mime, size) = if data.starts_with(b"\x89PNG\r\n\x1a\n") && data.len() >= 24 {
        let be = |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        ("image/png", Some((be(16), be(20))))
    } else if data.starts_with(&[0xff, 0xd8]) {
        ("image/jpeg", None)
    } else {
        ("application/octet-stream", None)
    };
    json!({
        "src": format!("data:{mime};base64,{}", crate::base64_encode(data)),
        "width": size.map(|s| s.0),
        "height": size.map(|s| s.1),
    })
}
