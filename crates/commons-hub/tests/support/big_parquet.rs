//! A large Parquet file of known rows (about 520 MB), for the viewer's test and benchmark.

/// Rows of the large Parquet file: about 104 bytes each, 520 MB in all.
pub const BIG_ROWS: u64 = 5_000_000;

/// The text of row `i` of the large file: 96 letters no compressor shrinks much.
pub fn big_text(i: u64) -> String {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut text = String::with_capacity(96);
    while text.len() < 96 {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for byte in z.to_le_bytes() {
            text.push((b'a' + byte % 26) as char);
        }
    }
    text
}

pub const LABELS: [&str; 5] = ["ant", "bee", "cat", "dog", "eel"];

/// Writes the large file as the arrow-rs writer does by default (Snappy, row groups of 2^20
/// rows, pages of 1 MiB, a page index).
pub fn write_big_parquet(path: &std::path::Path) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("text", arrow_schema::DataType::Utf8, false),
        arrow_schema::Field::new("score", arrow_schema::DataType::Float64, false),
        arrow_schema::Field::new("label", arrow_schema::DataType::Utf8, false),
    ]));
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let mut start = 0;
    while start < BIG_ROWS {
        let end = (start + 65_536).min(BIG_ROWS);
        let ids: Vec<i64> = (start..end).map(|i| i as i64).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from_iter_values((start..end).map(big_text))),
            Arc::new(Float64Array::from_iter_values((start..end).map(|i| (i % 1000) as f64 / 10.0))),
            Arc::new(StringArray::from_iter_values((start..end).map(|i| LABELS[(i % 5) as usize]))),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
        start = end;
    }
    writer.close().unwrap();
}

/// Creates public dataset `alice/big` on `hub` and commits the large file at `path` to it as
/// `data/train.parquet`, uploaded through LFS as a client would; returns its size.
pub fn publish_big_parquet(hub: &super::Hub, path: &std::path::Path) -> u64 {
    let data = std::fs::read(path).unwrap();
    let http = reqwest::blocking::Client::new();
    let created = http
        .post(format!("{}/api/repos/create", hub.url()))
        .bearer_auth(&hub.token)
        .json(&serde_json::json!({"name": "big", "type": "dataset"}))
        .send()
        .unwrap();
    assert!(created.status().is_success());
    let oid = super::RawClient::new(hub).upload_lfs("datasets/alice/big", &data).unwrap();
    let line =
        serde_json::json!({"key": "lfsFile", "value": {"path": "data/train.parquet", "algo": "sha256", "oid": oid, "size": data.len()}});
    let header = serde_json::json!({"key": "header", "value": {"summary": "a large Parquet file"}});
    let committed = http
        .post(format!("{}/api/datasets/alice/big/commit/main", hub.url()))
        .bearer_auth(&hub.token)
        .header("content-type", "application/x-ndjson")
        .body(format!("{header}\n{line}\n"))
        .send()
        .unwrap();
    assert!(committed.status().is_success(), "commit: {}", committed.text().unwrap());
    data.len() as u64
}
