//! Labelled sentences: JSON arrays (the UCI sentiment sets are `[{"text": .., "class": 0|1}]`)
//! and JSON lines. Labels must be non-negative integers; anything else names the record.
//! Records whose text is empty are skipped whatever their label: they carry no example (each UCI
//! file ends with a `{"text": "", "class": null}` placeholder).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::DataError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledText {
    pub text: String,
    pub label: usize,
}

/// One JSON object per line; blank lines are skipped.
pub fn read_jsonl(path: &Path, text_field: &str, label_field: &str) -> Result<Vec<LabeledText>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| DataError::Format { path: path.to_path_buf(), message: format!("line {}: {e}", i + 1) })?;
        if !is_blank(&value, text_field) {
            out.push(record(path, &format!("line {}", i + 1), &value, text_field, label_field)?);
        }
    }
    Ok(out)
}

/// A JSON array of objects.
pub fn read_json_array(path: &Path, text_field: &str, label_field: &str) -> Result<Vec<LabeledText>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let value: Value = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| DataError::Format { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
    let Value::Array(items) = value else {
        return Err(DataError::Format { path: path.to_path_buf(), message: "expected a JSON array of objects".into() });
    };
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| !is_blank(item, text_field))
        .map(|(i, item)| record(path, &format!("element {i}"), item, text_field, label_field))
        .collect()
}

fn is_blank(value: &Value, text_field: &str) -> bool {
    value.get(text_field).and_then(Value::as_str).is_some_and(|t| t.trim().is_empty())
}

fn record(path: &Path, place: &str, value: &Value, text_field: &str, label_field: &str) -> Result<LabeledText, DataError> {
    let fail = |message: String| DataError::Format { path: path.to_path_buf(), message: format!("{place}: {message}") };
    let text = value.get(text_field).and_then(Value::as_str).ok_or_else(|| fail(format!("missing string field '{text_field}'")))?;
    let label = match value.get(label_field) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| fail(format!("label '{label_field}' = {n} is not a non-negative integer")))?,
        Some(Value::String(s)) => {
            s.trim().parse::<u64>().map_err(|_| fail(format!("label '{label_field}' = {s:?} is not a non-negative integer")))?
        }
        Some(other) => return Err(fail(format!("label '{label_field}' = {other} is not a non-negative integer"))),
        None => return Err(fail(format!("missing label field '{label_field}'"))),
    };
    Ok(LabeledText { text: text.to_string(), label: label as usize })
}
