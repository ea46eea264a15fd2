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
/// Blank space before the first `---` is allowed, as the Hub and its clients allow it.
pub fn split(text: &str) -> (Option<&str>, &str) {
    let start = text.trim_start_matches([' ', '\t', '\r', '\n']);
    let Some(rest) = start.strip_prefix("---\n").or_else(|| start.strip_prefix("---\r\n")) else { return (None, text) };
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
    metadata_from_line(yaml, 1)
}

/// As [`metadata`], for YAML whose first line is line `first_line` of its file: an error names
/// the line of the file.
fn metadata_from_line(yaml: &str, first_line: u64) -> Result<Map<String, Value>, CardError> {
    let parsed = serde_saphyr::from_str::<Value>(yaml).map_err(|e| match e.location() {
        Some(at) if at.line() > 0 => {
            // The parser's message names the line within the YAML; say the file's instead.
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let reason = text.strip_prefix("line ").and_then(|rest| rest.split_once(": ")).map_or(text, |(_, reason)| reason);
            // Its first line; the rest is a snippet of the YAML with the YAML's own numbering.
            let reason = reason.lines().next().unwrap_or(reason);
            CardError::Yaml(format!("line {}, column {}: {reason}", at.line() + first_line - 1, at.column()))
        }
        _ => CardError::Yaml(e.to_string()),
    })?;
    match parsed {
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
            // The YAML starts on the line after the opening `---` (and the blank lines before it).
            (Some(yaml), body) => {
                let before = &text[..text.len() - text.trim_start_matches([' ', '\t', '\r', '\n']).len()];
                let first = 2 + before.matches('\n').count() as u64;
                Ok(Card { metadata: metadata_from_line(yaml, first)?, body: body.to_string() })
            }
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

/// The strings of `key`: one string, or a list of them (anything else in it is ignored).
pub fn strings(metadata: &Map<String, Value>, key: &str) -> Vec<String> {
    match metadata.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The tags a card gives its repository, as the Hugging Face Hub derives them: `library_name`
/// and `pipeline_tag` as they are, then the card's own `tags`, then `license:X`, `dataset:X`
/// (from `datasets`), `base_model:X`, `language:X`, `task_categories:X` and Commons'
/// `algorithm:X`; each once, in that order. A value may be one string or a list of them;
/// anything else is ignored.
pub fn hub_tags(metadata: &Map<String, Value>) -> Vec<String> {
    typed_hub_tags(metadata).into_iter().map(|(_, tag)| tag).collect()
}

/// [`hub_tags`], each with its facet as the Hub's tag pages group them: `library`,
/// `pipeline_tag`, `other` (the card's own `tags`), `license`, `dataset`, `base_model`,
/// `language`, `task_categories`, `algorithm`.
pub fn typed_hub_tags(metadata: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let strings = |key: &str| strings(metadata, key);
    let mut tags: Vec<(&'static str, String)> = Vec::new();
    let mut add = |kind: &'static str, tag: String| {
        let tag = tag.trim().to_string();
        if !tag.is_empty() && tag.len() <= 200 && !tags.iter().any(|(_, t)| *t == tag) {
            tags.push((kind, tag));
        }
    };
    for (key, kind) in [("library_name", "library"), ("pipeline_tag", "pipeline_tag"), ("tags", "other")] {
        strings(key).into_iter().for_each(|v| add(kind, v));
    }
    for (key, kind, prefix) in [
        ("license", "license", "license"),
        ("datasets", "dataset", "dataset"),
        ("base_model", "base_model", "base_model"),
        ("language", "language", "language"),
        ("task_categories", "task_categories", "task_categories"),
        // Commons' own: the algorithm repository a compute job ran to make this model.
        ("algorithm", "algorithm", "algorithm"),
    ] {
        strings(key).into_iter().for_each(|v| add(kind, format!("{prefix}:{v}")));
    }
    tags
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

    #[test]
    fn a_yaml_error_names_the_line_of_the_readme() {
        let err = Card::parse("---\nlicense: mit\ntags: [a, b\nother: 1\n---\nbody\n").unwrap_err().to_string();
        assert_eq!(err, "invalid YAML in the metadata block: line 4, column 6: illegal placement of ':' indicator");
    }

    #[test]
    fn tags_are_derived_as_the_hub_derives_them() {
        let card = Card::parse(
            "---\nlibrary_name: commons\npipeline_tag: image-classification\ntags: [mnist, mlp, mnist]\nlicense: mit\n\
             datasets: [commons/mnist]\nbase_model: alice/base\nlanguage: [en, fr]\nextra: {x: 1}\n---\n",
        )
        .unwrap();
        assert_eq!(
            hub_tags(&card.metadata),
            [
                "commons",
                "image-classification",
                "mnist",
                "mlp",
                "license:mit",
                "dataset:commons/mnist",
                "base_model:alice/base",
                "language:en",
                "language:fr"
            ]
        );
    }
}
