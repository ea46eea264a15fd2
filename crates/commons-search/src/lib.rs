//! The search index of a hub: full text over each repository's id, card (front matter and
//! Markdown) and tags, plus substrings of its id, on tantivy. One document per repository,
//! keyed by its id in the database.
//!
//! Invariants:
//! - The index never answers with a repository its caller may not read: the visibility rule
//!   (public, or in the caller's namespace) is part of every query. (The hub applies it once
//!   more when it reads the rows.)
//! - The database is the truth: each document carries the repository's `updated_at` and
//!   visibility, and [`SearchIndex::stale`] lists the repositories whose documents are missing
//!   or differ, so a hub rebuilds what a crash or an older version left behind.
//! - All calls block (tantivy does file I/O): callers run them off async runtime threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{LowerCaser, NgramTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index: {0}")]
    Open(#[from] tantivy::directory::error::OpenDirectoryError),
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// What the index knows of one repository.
#[derive(Debug, Clone)]
pub struct RepoDoc {
    pub repo_id: i64,
    /// `model`, `dataset` or `algorithm`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub private: bool,
    pub updated_at: i64,
    /// The card's Markdown and the strings of its front matter.
    pub card_text: String,
    pub tags: Vec<String>,
}

/// Substrings of ids are found through these n-grams.
const GRAMS: &str = "commons_id_grams";
const MIN_GRAM: usize = 2;
const MAX_GRAM: usize = 3;
/// Memory of the index writer (tantivy's smallest allowed is 15 MB).
const WRITER_HEAP: usize = 15_000_000;

struct Fields {
    repo_id: Field,
    stamp: Field,
    kind: Field,
    namespace: Field,
    public: Field,
    id_grams: Field,
    text: Field,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (empty) when there is none.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut schema = Schema::builder();
        let grams = TextOptions::default()
            .set_indexing_options(TextFieldIndexing::default().set_tokenizer(GRAMS).set_index_option(IndexRecordOption::WithFreqs));
        let fields = Fields {
            repo_id: schema.add_i64_field("repo_id", INDEXED | STORED | FAST),
            stamp: schema.add_text_field("stamp", STRING | STORED),
            kind: schema.add_text_field("kind", STRING),
            namespace: schema.add_text_field("namespace", STRING),
            public: schema.add_u64_field("public", INDEXED),
            id_grams: schema.add_text_field("id_grams", grams),
            text: schema.add_text_field("text", TEXT),
        };
        let schema = schema.build();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(directory, schema)?;
        index
            .tokenizers()
            .register(GRAMS, TextAnalyzer::builder(NgramTokenizer::new(MIN_GRAM, MAX_GRAM, false)?).filter(LowerCaser).build());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = Mutex::new(index.writer_with_num_threads(1, WRITER_HEAP)?);
        Ok(Self { index, reader, writer, fields })
    }

    /// Adds or replaces the documents of `docs`, and makes them searchable.
    pub fn upsert(&self, docs: &[RepoDoc]) -> Result<()> {
        let f = &self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for d in docs {
            writer.delete_term(Term::from_field_i64(f.repo_id, d.repo_id));
            let id = format!("{}/{}", d.namespace, d.name);
            let text = format!("{id} {} {} {}", d.name.replace(['-', '_', '.'], " "), d.tags.join(" "), d.card_text);
            writer.add_document(doc!(
                f.repo_id => d.repo_id,
                f.stamp => stamp(d.updated_at, d.private),
                f.kind => d.kind.clone(),
                f.namespace => d.namespace.clone(),
                f.public => u64::from(!d.private),
                f.id_grams => id,
                f.text => text,
            ))?;
        }
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Removes the document of repository `repo_id`.
    pub fn remove(&self, repo_id: i64) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.delete_term(Term::from_field_i64(self.fields.repo_id, repo_id));
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Ids of repositories of `kind` that match `text`, best first, at most `limit`: every
    /// word of the text in the full text (id, card, tags), or the text as a substring of the
    /// id. Only public repositories, and those of `viewer`'s namespace.
    pub fn search(&self, kind: &str, text: &str, viewer: Option<&str>, limit: usize) -> Result<Vec<i64>> {
        let f = &self.fields;
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut words = QueryParser::for_index(&self.index, vec![f.text]);
        words.set_conjunction_by_default();
        // Query syntax in a search box is words, not operators: a stray `:` or `"` is not an error.
        let (words, _) = words.parse_query_lenient(&text.replace(|c: char| !c.is_alphanumeric() && c != '-' && c != '_', " "));
        let mut matching: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, words)];
        if let Some(substring) = self.substring_query(text) {
            matching.push((Occur::Should, substring));
        }
        let mut visible: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Should, Box::new(TermQuery::new(Term::from_field_u64(f.public, 1), IndexRecordOption::Basic)))];
        if let Some(viewer) = viewer {
            visible.push((Occur::Should, Box::new(TermQuery::new(Term::from_field_text(f.namespace, viewer), IndexRecordOption::Basic))));
        }
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.kind, kind), IndexRecordOption::Basic))),
            (Occur::Must, Box::new(BooleanQuery::new(visible))),
            (Occur::Must, Box::new(BooleanQuery::new(matching))),
        ]);
        let searcher = self.reader.searcher();
        let hits = searcher.search(&query, &TopDocs::with_limit(limit.max(1)))?;
        // Ids from the column store, not the document store: a search may keep thousands of
        // hits, and reading each stored document would cost more than the search.
        let mut columns = HashMap::new();
        let mut ids = Vec::with_capacity(hits.len());
        for (_, address) in hits {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(searcher.segment_reader(address.segment_ord).fast_fields().i64("repo_id")?)
                }
            };
            if let Some(id) = column.first(address.doc_id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// All n-grams of `text` must be in the id's: `cnn` finds `alice/cnn-mnist`.
    fn substring_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        if chars.len() < MIN_GRAM {
            return None;
        }
        let n = chars.len().min(MAX_GRAM);
        let grams: Vec<(Occur, Box<dyn Query>)> = chars
            .windows(n)
            .map(|w| -> (Occur, Box<dyn Query>) {
                let gram: String = w.iter().collect();
                (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(self.fields.id_grams, &gram), IndexRecordOption::Basic)))
            })
            .collect();
        Some(Box::new(BooleanQuery::new(grams)))
    }

    /// Of `current` (each repository's id, `updated_at` and privacy, from the database), those
    /// whose documents are missing or differ; and the ids of documents no repository has any
    /// more.
    pub fn stale(&self, current: &[(i64, i64, bool)]) -> Result<(Vec<i64>, Vec<i64>)> {
        let f = &self.fields;
        let searcher = self.reader.searcher();
        let mut indexed: HashMap<i64, String> = HashMap::new();
        for address in searcher.search(&AllQuery, &DocSetCollector)? {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let (Some(id), Some(stamp)) =
                (doc.get_first(f.repo_id).and_then(|v| v.as_i64()), doc.get_first(f.stamp).and_then(|v| v.as_str()))
            {
                indexed.insert(id, stamp.to_string());
            }
        }
        let mut missing = Vec::new();
        for &(id, updated_at, private) in current {
            if indexed.remove(&id).as_deref() != Some(stamp(updated_at, private).as_str()) {
                missing.push(id);
            }
        }
        Ok((missing, indexed.into_keys().collect()))
    }
}

fn stamp(updated_at: i64, private: bool) -> String {
    format!("{updated_at}:{}", if private { "private" } else { "public" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(id: i64, ns: &str, name: &str, private: bool, card: &str) -> RepoDoc {
        RepoDoc {
            repo_id: id,
            kind: "model".into(),
            namespace: ns.into(),
            name: name.into(),
            private,
            updated_at: 100 + id,
            card_text: card.into(),
            tags: vec!["mnist".into()],
        }
    }

    #[test]
    fn words_of_cards_and_substrings_of_ids_are_found_and_private_repositories_only_by_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        index
            .upsert(&[
                repo(1, "alice", "cnn-mnist", false, "A convolutional network for digits"),
                repo(2, "alice", "mlp", false, "A multilayer perceptron, trained on digits"),
                repo(3, "alice", "secret-cnn", true, "Convolutional and private"),
            ])
            .unwrap();
        let search = |text: &str, viewer: Option<&str>| {
            let mut ids = index.search("model", text, viewer, 100).unwrap();
            ids.sort();
            ids
        };
        assert_eq!(search("cnn", None), [1], "a substring of an id");
        assert_eq!(search("cnn", Some("alice")), [1, 3], "the owner sees her private one");
        assert_eq!(search("cnn", Some("bob")), [1]);
        assert_eq!(search("digits", None), [1, 2], "a word of the cards");
        assert_eq!(search("convolutional digits", None), [1], "all words must match");
        assert_eq!(search("perceptron", Some("bob")), [2]);
        assert_eq!(search("c", None), Vec::<i64>::new(), "one letter finds nothing by substring");
        assert_eq!(search("title:\"x", None), Vec::<i64>::new(), "query syntax is not an error");
        assert_eq!(index.search("dataset", "digits", None, 100).unwrap(), Vec::<i64>::new(), "another kind");

        // Made private, removed, changed: the index follows.
        index.upsert(&[repo(1, "alice", "cnn-mnist", true, "A convolutional network for digits")]).unwrap();
        assert_eq!(search("cnn", None), Vec::<i64>::new());
        index.remove(2).unwrap();
        assert_eq!(search("perceptron", None), Vec::<i64>::new());

        // What the database says against what the index holds.
        let (stale, gone) = index.stale(&[(1, 101, true), (3, 999, true), (4, 104, false)]).unwrap();
        assert_eq!((stale, gone), (vec![3, 4], vec![]));
        let (_, gone) = index.stale(&[(1, 101, true)]).unwrap();
        assert_eq!(gone, [3]);
    }
}
