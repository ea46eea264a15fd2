//! Repository cards: a `README.md` whose YAML front matter, between two `---` lines at its top,
//! carries the repository's metadata (license, datasets, metrics, provenance), as on the Hugging
//! Face Hub. The one place that splits, parses and writes that front matter; the hub validates
//! it, the engine and the worker write it.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("invalid YAML in the metadata block: {0}")]
    Yaml(String),
    #[error("the metadata block must be a mapping, found {0}")]
    NotAMapping(&'static str),
}

/// A card: its metadata (empty when it has no front matter) and the Markdown after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Card {
    pub metadata: Map<String, Value>,
    pub body: String,
}

/// The YAML between the leading `---` lines of `text`, if it has front matter, and the rest.
pub fn split(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else { return (None, text) };
    // The closing line: `---` alone, at the start of a line.
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

/// The metadata of a front matter block: a mapping, or nothing for an empty block.
pub fn metadata(yaml: &str) -> Result<Map<String, Value>, CardError> {
    match serde_saphyr::from_str::<Value>(yaml).map_err(|e| CardError::Yaml(e.to_string()))? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(CardError::NotAMapping(kind_of(&other))),
    }
}

/// `---`, `metadata` as YAML, `---`: the block a card starts with.
pub fn front_matter<T: Serialize>(metadata: &T) -> Result<String, CardError> {
    let yaml = serde_saphyr::to_string(metadata).map_err(|e| CardError::Yaml(e.to_string()))?;
    Ok(format!("---\n{yaml}---\n"))
}

impl Card {
    /// Reads a card; text without front matter is all body.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        match split(text) {
            (Some(yaml), body) => Ok(Card { metadata: metadata(yaml)?, body: body.to_string() }),
            (None, body) => Ok(Card { metadata: Map::new(), body: body.to_string() }),
        }
    }

    /// The card's text: front matter (when there is metadata), then the body.
    pub fn render(&self) -> Result<String, CardError> {
        if self.metadata.is_empty() {
            return Ok(self.body.clone());
        }
        Ok(format!("{}{}", front_matter(&self.metadata)?, self.body))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_reads_and_writes_its_front_matter() {
        let card = Card::parse("---\nlicense: mit\ntags: [a, b]\n---\n# Title\n\ntext\n").unwrap();
        assert_eq!(card.metadata["license"], "mit");
        assert_eq!(card.body, "# Title\n\ntext\n");
        let again = Card::parse(&card.render().unwrap()).unwrap();
        assert_eq!(again, card);
        assert_eq!(split("---\r\nx: 1\r\n---\r\nbody"), (Some("x: 1\r\n"), "body"));
        assert_eq!(split("# no front matter\n---\n"), (None, "# no front matter\n---\n"));
        assert_eq!(split("---\nnever closed\n"), (None, "---\nnever closed\n"));
        assert!(matches!(metadata("- a list"), Err(CardError::NotAMapping("a list"))));
        assert!(matches!(metadata("key: [unclosed"), Err(CardError::Yaml(_))));
        assert!(metadata("").unwrap().is_empty());
    }
}
