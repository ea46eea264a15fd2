//! The search index of a hub: full text over each repository's id, card (front matter and
//! Markdown) and tags, plus substrings of its id, on tantivy. One document per repository,
//! keyed by its id in the database.
//!
//! Invariants:
//! - The index never answers with a repository its caller may not read: the visibility rule
//!   (public, or in a namespace the caller reads) is checked on every hit of every search, in
//!   the collector that pages them ([`Page`]). (The hub applies it once more when it reads the
//!   rows.)
//! - The database is the truth: each document carries the repository's `updated_at` and
//!   visibility, and [`SearchIndex::stale`] lists the repositories whose documents are missing
//!   or differ, so a hub rebuilds what a crash or an older version left behind.
//! - All calls block (tantivy does file I/O): callers run them off async runtime threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::{Collector, DocSetCollector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{LowerCaser, NgramTokenizer, TextAnalyzer};
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, SegmentReader, TantivyDocument, Term, doc};

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
#[derive(Debug, Clone, Default)]
pub struct RepoDoc {
    pub repo_id: i64,
    /// `model`, `dataset` or `algorithm`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub private: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub likes: i64,
    pub downloads: i64,
    pub trending: i64,
    /// The card's Markdown and the strings of its front matter.
    pub card_text: String,
    pub tags: Vec<String>,
}

impl RepoDoc {
    /// What [`SearchIndex::stale`] compares: everything a listing sorts or filters on that can
    /// change without the card changing.
    pub fn stamp(&self) -> Stamp {
        Stamp { updated_at: self.updated_at, private: self.private, likes: self.likes, downloads: self.downloads, trending: self.trending }
    }
}

/// A repository's state as the database has it, against which its document is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub updated_at: i64,
    pub private: bool,
    pub likes: i64,
    pub downloads: i64,
    pub trending: i64,
}

impl Stamp {
    fn encode(&self) -> String {
        let visibility = if self.private { "private" } else { "public" };
        format!("{}:{visibility}:{}:{}:{}", self.updated_at, self.likes, self.downloads, self.trending)
    }
}

/// The order of a search's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    LastModified,
    CreatedAt,
    /// By namespace, then name.
    Name,
    Likes,
    Downloads,
    Trending,
}

impl Sort {
    fn column(self) -> &'static str {
        match self {
            Sort::LastModified => "updated_at",
            Sort::CreatedAt => "created_at",
            Sort::Name => "sort_name",
            Sort::Likes => "likes",
            Sort::Downloads => "downloads",
            Sort::Trending => "trending",
        }
    }
}

/// One page of a search: what matches, filtered, sorted and paged in the index, so that a page
/// costs the database only the rows it answers.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    pub kind: &'a str,
    pub text: &'a str,
    /// The namespaces whose private repositories may be answered (the viewer's own and their
    /// organizations'); public ones always.
    pub readable: &'a [String],
    /// Only repositories of this namespace.
    pub author: Option<&'a str>,
    /// Tags every answer carries.
    pub tags: &'a [String],
    pub sort: Sort,
    pub ascending: bool,
    pub offset: usize,
    pub limit: usize,
}

/// Substrings of ids are found through these n-grams.
const GRAMS: &str = "commons_id_grams";
const MIN_GRAM: usize = 2;
const MAX_GRAM: usize = 3;
/// Memory of the index writer (tantivy's smallest allowed is 15 MB).
const WRITER_HEAP: usize = 15_000_000;
/// Names the schema; an index written with another is rebuilt from the database.
const SCHEMA_VERSION: &str = "4";

struct Fields {
    repo_id: Field,
    stamp: Field,
    kind: Field,
    namespace: Field,
    public: Field,
    tag: Field,
    id_grams: Field,
    text: Field,
    sort_name: Field,
    created_at: Field,
    updated_at: Field,
    likes: Field,
    downloads: Field,
    trending: Field,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    columns: PlainColumns,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (empty) when there is none, or when the one there
    /// was written with another schema: the index holds nothing the database does not, and a
    /// hub fills it from the database at start ([`Self::stale`]).
    pub fn open(dir: &Path) -> Result<Self> {
        let version = dir.join("commons-schema-version");
        if dir.exists() && std::fs::read_to_string(&version).ok().as_deref() != Some(SCHEMA_VERSION) {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(&version, SCHEMA_VERSION)?;
        let mut schema = Schema::builder();
        let grams = TextOptions::default()
            .set_indexing_options(TextFieldIndexing::default().set_tokenizer(GRAMS).set_index_option(IndexRecordOption::WithFreqs));
        let fields = Fields {
            repo_id: schema.add_i64_field("repo_id", INDEXED | STORED | FAST),
            stamp: schema.add_text_field("stamp", STRING | STORED),
            kind: schema.add_u64_field("kind", FAST),
            namespace: schema.add_text_field("namespace", STRING | FAST),
            public: schema.add_u64_field("public", FAST),
            tag: schema.add_text_field("tag", STRING | FAST),
            id_grams: schema.add_text_field("id_grams", grams),
            text: schema.add_text_field("text", TEXT),
            sort_name: schema.add_text_field("sort_name", STRING | FAST),
            created_at: schema.add_i64_field("created_at", FAST),
            updated_at: schema.add_i64_field("updated_at", FAST),
            likes: schema.add_i64_field("likes", FAST),
            downloads: schema.add_i64_field("downloads", FAST),
            trending: schema.add_i64_field("trending", FAST),
        };
        let schema = schema.build();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(directory, schema)?;
        index
            .tokenizers()
            .register(GRAMS, TextAnalyzer::builder(NgramTokenizer::new(MIN_GRAM, MAX_GRAM, false)?).filter(LowerCaser).build());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = Mutex::new(index.writer_with_num_threads(1, WRITER_HEAP)?);
        Ok(Self { index, reader, writer, fields, columns: PlainColumns::default() })
    }

    /// Adds or replaces the documents of `docs`, and makes them searchable.
    pub fn upsert(&self, docs: &[RepoDoc]) -> Result<()> {
        let f = &self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for d in docs {
            writer.delete_term(Term::from_field_i64(f.repo_id, d.repo_id));
            let id = format!("{}/{}", d.namespace, d.name);
            let text = format!("{id} {} {} {}", d.name.replace(['-', '_', '.'], " "), d.tags.join(" "), d.card_text);
            let mut document = doc!(
                f.repo_id => d.repo_id,
                f.stamp => d.stamp().encode(),
                f.kind => kind_code(&d.kind),
                f.namespace => d.namespace.clone(),
                f.public => u64::from(!d.private),
                f.id_grams => id,
                f.text => text,
                // Orders as the pair (namespace, name) does: no byte of a name sorts below \u{1}.
                f.sort_name => format!("{}\u{1}{}", d.namespace, d.name),
                f.created_at => d.created_at,
                f.updated_at => d.updated_at,
                f.likes => d.likes,
                f.downloads => d.downloads,
                f.trending => d.trending,
            );
            for tag in &d.tags {
                document.add_text(f.tag, tag);
            }
            writer.add_document(document)?;
        }
        writer.commit()?;
        drop(writer);
        self.reload()
    }

    /// Removes the document of repository `repo_id`.
    pub fn remove(&self, repo_id: i64) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.delete_term(Term::from_field_i64(self.fields.repo_id, repo_id));
        writer.commit()?;
        drop(writer);
        self.reload()
    }

    /// Makes the last commit searchable, and forgets the columns of segments merged away.
    fn reload(&self) -> Result<()> {
        self.reader.reload()?;
        self.columns.keep_only(&self.reader.searcher());
        Ok(())
    }

    /// Ids of one page of the repositories of `q.kind` that match `q.text`, in the order asked
    /// for: every word of the text in the full text (id, card, tags), or the text as a
    /// substring of the id; only public repositories and those of the viewer's namespace, with
    /// every tag asked for, of the author asked for. The cost grows with the matches (each is
    /// one look into a column), not with the repositories indexed.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<i64>> {
        let f = &self.fields;
        let text = q.text.trim();
        if text.is_empty() || q.limit == 0 {
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
        let searcher = self.reader.searcher();
        // A filter most repositories pass is checked in a column, match by match; as a term of
        // the query, every match would seek into a posting list of nearly every repository. A
        // rare one is a term of the query, which then walks only its few repositories.
        let common = |term: &Term| -> Result<bool> { Ok(searcher.doc_freq(term)? * 8 > searcher.num_docs()) };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(BooleanQuery::new(matching)))];
        // Puts a rare filter into the query; a common one is left to the columns (`false`).
        let mut rare_into_query = |term: Term| -> Result<bool> {
            if common(&term)? {
                return Ok(false);
            }
            clauses.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
            Ok(true)
        };
        let author = match q.author {
            Some(name) if !rare_into_query(Term::from_field_text(f.namespace, name))? => Some(name.to_string()),
            _ => None,
        };
        let mut column_tags = Vec::new();
        for tag in q.tags {
            if !rare_into_query(Term::from_field_text(f.tag, tag))? {
                column_tags.push(tag.clone());
            }
        }
        let page = Page {
            columns: &self.columns,
            kind: kind_code(q.kind) as i64,
            readable: q.readable.to_vec(),
            author,
            tags: column_tags,
            sort: q.sort,
            ascending: q.ascending,
            offset: q.offset,
            limit: q.limit,
        };
        Ok(searcher.search(&BooleanQuery::new(clauses), &page)?.into_iter().map(|(_, id)| id).collect())
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

    /// Of `current` (each repository's id and [`Stamp`], from the database), those whose
    /// documents are missing or differ; and the ids of documents no repository has any more.
    pub fn stale(&self, current: &[(i64, Stamp)]) -> Result<(Vec<i64>, Vec<i64>)> {
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
        for (id, stamp) in current {
            if indexed.remove(id).as_deref() != Some(stamp.encode().as_str()) {
                missing.push(*id);
            }
        }
        Ok((missing, indexed.into_keys().collect()))
    }
}

/// A kind as a number a column holds (FNV-1a of its name: stable across versions).
fn kind_code(kind: &str) -> u64 {
    kind.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The columns a search reads hit by hit (kind, visibility, namespace, repository id, sort
/// values), copied once per segment out of tantivy's compressed columns into plain arrays
/// indexed by document: a look into one is a load, where a compressed column decodes its block
/// (a quarter of a search's time in `perf` before). Segments never change once written (a
/// deletion only hides documents), so a copy stays right for as long as its segment is searched;
/// those of segments merged away are dropped at the next reload. Memory: eight bytes a document for
/// each column in use (≈ 5 MB for 100,000 repositories and one sort).
#[derive(Default)]
struct PlainColumns {
    by_segment: RwLock<HashMap<ColumnOf, Arc<[i64]>>>,
}

/// A segment and the name of one of its columns.
type ColumnOf = (SegmentId, &'static str);

impl PlainColumns {
    /// Column `name` of `segment`: a number column as its values (`u64`s as their bits), a
    /// string column as each document's first ordinal (−1 for none), which orders as the
    /// strings do within the segment.
    fn get(&self, segment: &SegmentReader, name: &'static str) -> tantivy::Result<Arc<[i64]>> {
        let key = (segment.segment_id(), name);
        if let Some(column) = self.by_segment.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return Ok(column.clone());
        }
        let columns = segment.fast_fields();
        let docs = 0..segment.max_doc();
        let values: Arc<[i64]> = match name {
            "kind" | "public" => {
                let column = columns.u64(name)?.first_or_default_col(0);
                docs.map(|doc| column.get_val(doc) as i64).collect()
            }
            "namespace" | "sort_name" => {
                let column = str_column(segment, name)?;
                docs.map(|doc| column.term_ords(doc).next().map_or(-1, |ord| ord as i64)).collect()
            }
            _ => {
                let column = columns.i64(name)?.first_or_default_col(0);
                docs.map(|doc| column.get_val(doc)).collect()
            }
        };
        self.by_segment.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, values.clone());
        Ok(values)
    }

    /// Drops the columns of segments `searcher` no longer has.
    fn keep_only(&self, searcher: &tantivy::Searcher) {
        let live: Vec<SegmentId> = searcher.segment_readers().iter().map(SegmentReader::segment_id).collect();
        self.by_segment.write().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|(segment, _), _| live.contains(segment));
    }
}

/// A page of hits, gathered segment by segment: the kind, the visibility rule (public, or in a
/// namespace the viewer reads) and the common filters checked in columns hit by hit, each hit
/// keyed by its sort value then its id, as the database orders (`ORDER BY column, id` in one
/// direction), and only each segment's best `offset + limit` kept.
struct Page<'a> {
    columns: &'a PlainColumns,
    kind: i64,
    readable: Vec<String>,
    author: Option<String>,
    tags: Vec<String>,
    sort: Sort,
    ascending: bool,
    offset: usize,
    limit: usize,
}

/// A sort value comparable across segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Number(i64),
    Text(String),
}

struct SegmentPage {
    kind: i64,
    kinds: Arc<[i64]>,
    public: Arc<[i64]>,
    /// Each document's namespace ordinal in this segment.
    namespaces: Arc<[i64]>,
    /// The segment's ordinals of the namespaces the viewer reads.
    readable: Vec<i64>,
    /// The ordinal the author's namespace must have; `None` when it is a term of the query.
    author: Option<i64>,
    tags: StrColumn,
    /// The segment's ordinals of the tags checked here.
    required_tags: Vec<u64>,
    /// A filter names a value no document of this segment has.
    none: bool,
    repo_ids: Arc<[i64]>,
    /// Each document's sort value: for names, the name's ordinal in this segment, ordered as
    /// the names are (`names` turns the kept ones back into names).
    values: Arc<[i64]>,
    names: Option<StrColumn>,
    ascending: bool,
    keep: usize,
    /// The worst value kept once `keep` hits are in hand: a hit worse than it cannot be on the
    /// page, and is passed over without reading more of it.
    bar: Option<i64>,
    /// (sort value, repository id).
    hits: Vec<(i64, i64)>,
}

fn str_column(segment: &SegmentReader, name: &str) -> tantivy::Result<StrColumn> {
    segment.fast_fields().str(name)?.ok_or_else(|| tantivy::TantivyError::SchemaError(format!("no {name} column")))
}

/// The ordinal of `value` in a string column of one segment.
fn ordinal(column: &StrColumn, value: &str) -> tantivy::Result<Option<u64>> {
    Ok(column.dictionary().term_ord(value)?)
}

impl Collector for Page<'_> {
    type Fruit = Vec<(SortValue, i64)>;
    type Child = SegmentPage;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<SegmentPage> {
        let namespaces = str_column(segment, "namespace")?;
        let tags = str_column(segment, "tag")?;
        let mut readable = Vec::with_capacity(self.readable.len());
        for ns in &self.readable {
            readable.extend(ordinal(&namespaces, ns)?.map(|ord| ord as i64));
        }
        let author = match &self.author {
            Some(name) => ordinal(&namespaces, name)?.map_or(Err(()), |ord| Ok(Some(ord as i64))),
            None => Ok(None),
        };
        let mut required_tags = Vec::with_capacity(self.tags.len());
        let mut none = author.is_err();
        for tag in &self.tags {
            match ordinal(&tags, tag)? {
                Some(ord) => required_tags.push(ord),
                None => none = true,
            }
        }
        let names = match self.sort {
            Sort::Name => Some(str_column(segment, self.sort.column())?),
            _ => None,
        };
        Ok(SegmentPage {
            kind: self.kind,
            kinds: self.columns.get(segment, "kind")?,
            public: self.columns.get(segment, "public")?,
            namespaces: self.columns.get(segment, "namespace")?,
            readable,
            author: author.unwrap_or(None),
            tags,
            required_tags,
            none,
            repo_ids: self.columns.get(segment, "repo_id")?,
            values: self.columns.get(segment, self.sort.column())?,
            names,
            ascending: self.ascending,
            keep: self.offset.saturating_add(self.limit),
            bar: None,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Vec<(SortValue, i64)>>) -> tantivy::Result<Vec<(SortValue, i64)>> {
        let mut hits: Vec<(SortValue, i64)> = segments.into_iter().flatten().collect();
        if self.ascending {
            hits.sort_unstable();
        } else {
            hits.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok(hits.into_iter().skip(self.offset).take(self.limit).collect())
    }
}

impl SegmentPage {
    fn passes(&self, doc: usize) -> bool {
        self.kinds[doc] == self.kind
            && (self.public[doc] == 1 || self.readable.contains(&self.namespaces[doc]))
            && self.author.is_none_or(|author| self.namespaces[doc] == author)
            && self.required_tags.iter().all(|&tag| self.tags.term_ords(doc as DocId).any(|ord| ord == tag))
    }

    /// Keeps the best `keep` hits in place, in order, and raises the bar to the worst of them.
    fn cut(&mut self) {
        let keep = self.keep.min(self.hits.len());
        if keep == 0 {
            self.hits.clear();
            return;
        }
        if self.ascending {
            self.hits.select_nth_unstable(keep - 1);
        } else {
            self.hits.select_nth_unstable_by(keep - 1, |a, b| b.cmp(a));
        }
        self.hits.truncate(keep);
        if keep == self.keep {
            self.bar = Some(self.hits[keep - 1].0);
        }
    }
}

impl SegmentCollector for SegmentPage {
    type Fruit = Vec<(SortValue, i64)>;

    fn collect(&mut self, doc: DocId, _: tantivy::Score) {
        let doc = doc as usize;
        let value = self.values[doc];
        // Worse than the page's worst so far: cannot be on it. (A tie may still be, by its id.)
        let below_bar = self.bar.is_some_and(|bar| if self.ascending { value > bar } else { value < bar });
        if below_bar || self.none || !self.passes(doc) {
            return;
        }
        self.hits.push((value, self.repo_ids[doc]));
        // Memory stays at twice the page, whatever the number of matches.
        if self.hits.len() >= self.keep.max(64).saturating_mul(2) {
            self.cut();
        }
    }

    fn harvest(mut self) -> Vec<(SortValue, i64)> {
        self.cut();
        let names = self.names.take();
        self.hits
            .into_iter()
            .map(|(value, id)| match &names {
                None => (SortValue::Number(value), id),
                // Ordinals follow the names' order within a segment; only the names themselves
                // compare across segments.
                Some(column) => {
                    let mut text = String::new();
                    if value >= 0 {
                        let _ = column.ord_to_str(value as u64, &mut text);
                    }
                    (SortValue::Text(text), id)
                }
            })
            .collect()
    }
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
            ..Default::default()
        }
    }

    fn query<'a>(text: &'a str, readable: &'a [String]) -> SearchQuery<'a> {
        SearchQuery {
            kind: "model",
            text,
            readable,
            author: None,
            tags: &[],
            sort: Sort::LastModified,
            ascending: false,
            offset: 0,
            limit: 100,
        }
    }

    fn stamp(updated_at: i64, private: bool) -> Stamp {
        Stamp { updated_at, private, likes: 0, downloads: 0, trending: 0 }
    }

    #[test]
    fn words_of_cards_and_substrings_of_ids_are_found_and_private_repositories_only_by_their_readers() {
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
            let readable: Vec<String> = viewer.into_iter().map(String::from).collect();
            let mut ids = index.search(&query(text, &readable)).unwrap();
            ids.sort();
            ids
        };
        assert_eq!(search("cnn", None), [1], "a substring of an id");
        assert_eq!(search("cnn", Some("alice")), [1, 3], "the owner sees her private one");
        assert_eq!(search("cnn", Some("bob")), [1]);
        assert_eq!(search("digits", None), [1, 2], "a word of the cards");
        assert_eq!(search("convolutional digits", None), [1], "all words must match");
        assert_eq!(search("perceptron", Some("bob")), [2]);
        let org_member = ["bob".to_string(), "alice-lab".to_string()];
        index.upsert(&[repo(4, "alice-lab", "lab-cnn", true, "The lab's private network")]).unwrap();
        let mut member_sees = index.search(&query("cnn", &org_member)).unwrap();
        member_sees.sort();
        assert_eq!(member_sees, [1, 4], "a member reads the organization's private one, not alice's");
        assert_eq!(search("cnn", Some("bob")), [1], "and only a member");
        index.remove(4).unwrap();
        assert_eq!(search("c", None), Vec::<i64>::new(), "one letter finds nothing by substring");
        assert_eq!(search("title:\"x", None), Vec::<i64>::new(), "query syntax is not an error");
        assert_eq!(index.search(&SearchQuery { kind: "dataset", ..query("digits", &[]) }).unwrap(), Vec::<i64>::new(), "another kind");

        // Made private, removed, changed: the index follows.
        index.upsert(&[repo(1, "alice", "cnn-mnist", true, "A convolutional network for digits")]).unwrap();
        assert_eq!(search("cnn", None), Vec::<i64>::new());
        index.remove(2).unwrap();
        assert_eq!(search("perceptron", None), Vec::<i64>::new());

        // What the database says against what the index holds.
        let (stale, gone) = index.stale(&[(1, stamp(101, true)), (3, stamp(999, true)), (4, stamp(104, false))]).unwrap();
        assert_eq!((stale, gone), (vec![3, 4], vec![]));
        let (_, gone) = index.stale(&[(1, stamp(101, true))]).unwrap();
        assert_eq!(gone, [3]);
        let liked = Stamp { likes: 1, ..stamp(101, true) };
        assert_eq!(index.stale(&[(1, liked)]).unwrap().0, [1], "a like the index has not seen makes the document stale");
    }

    #[test]
    fn pages_are_sorted_filtered_and_cut_in_the_index_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        // Three commits, so three segments: an order must hold across them.
        let doc = |id: i64, ns: &str, likes: i64, tags: &[&str]| RepoDoc {
            likes,
            created_at: 1000 - id,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..repo(id, ns, &format!("net-{id}"), false, "digits")
        };
        index.upsert(&[doc(1, "bob", 5, &["license:mit"]), doc(2, "alice", 9, &[])]).unwrap();
        index.upsert(&[doc(3, "alice", 5, &["license:mit", "cnn"]), doc(4, "carol", 0, &["license:mit"])]).unwrap();
        index.upsert(&[doc(5, "bob", 7, &[])]).unwrap();
        let page = |sort: Sort, ascending: bool, offset: usize, limit: usize| {
            index.search(&SearchQuery { sort, ascending, offset, limit, ..query("digits", &[]) }).unwrap()
        };
        assert_eq!(page(Sort::Likes, false, 0, 10), [2, 5, 3, 1, 4], "ties on likes go by id, as in the database");
        assert_eq!(page(Sort::Likes, true, 0, 10), [4, 1, 3, 5, 2]);
        assert_eq!(page(Sort::Likes, false, 1, 2), [5, 3], "a page is cut in the index");
        assert_eq!(page(Sort::LastModified, false, 0, 3), [5, 4, 3]);
        assert_eq!(page(Sort::CreatedAt, false, 0, 2), [1, 2]);
        assert_eq!(page(Sort::Name, true, 0, 10), [2, 3, 1, 5, 4], "by namespace, then name");
        assert_eq!(page(Sort::Name, false, 0, 2), [4, 5]);
        let mit = ["license:mit".to_string()];
        let both = ["license:mit".to_string(), "cnn".to_string()];
        let filtered = |author: Option<&str>, tags: &[String]| {
            index.search(&SearchQuery { author, tags, sort: Sort::Likes, ..query("digits", &[]) }).unwrap()
        };
        assert_eq!(filtered(None, &mit), [3, 1, 4]);
        assert_eq!(filtered(None, &both), [3], "every tag must hold");
        assert_eq!(filtered(Some("bob"), &mit), [1]);
        assert_eq!(filtered(Some("bob"), &[]), [5, 1]);
        assert_eq!(filtered(Some("dave"), &[]), Vec::<i64>::new());
    }

    #[test]
    fn a_page_deep_in_many_hits_with_ties_is_the_one_a_full_sort_gives_and_removed_repositories_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        // 600 hits in one segment (more than a segment keeps before it cuts, so the bar is
        // raised many times), likes with many ties, one in seven private to "carol".
        let docs: Vec<RepoDoc> = (1..=600)
            .map(|id| RepoDoc {
                likes: (id * 7919) % 3,
                updated_at: (id * 104_729) % 4,
                ..repo(id, if id % 7 == 0 { "carol" } else { "bob" }, &format!("net-{id}"), id % 7 == 0, "digits")
            })
            .collect();
        index.upsert(&docs).unwrap();
        let expected = |docs: &[RepoDoc], readable: bool, key: fn(&RepoDoc) -> i64, ascending: bool, offset: usize, limit: usize| {
            let mut all: Vec<(i64, i64)> = docs.iter().filter(|d| readable || !d.private).map(|d| (key(d), d.repo_id)).collect();
            all.sort_unstable();
            if !ascending {
                all.reverse();
            }
            all.into_iter().skip(offset).take(limit).map(|(_, id)| id).collect::<Vec<i64>>()
        };
        let carol = ["carol".to_string()];
        for docs in [docs.clone(), docs.iter().filter(|d| d.repo_id % 5 != 0).cloned().collect()] {
            for (sort, key) in
                [(Sort::Likes, (|d: &RepoDoc| d.likes) as fn(&RepoDoc) -> i64), (Sort::LastModified, |d: &RepoDoc| d.updated_at)]
            {
                for (ascending, offset, limit, readable) in
                    [(false, 0, 20, false), (true, 0, 21, true), (false, 300, 40, true), (true, 550, 30, false)]
                {
                    let readable_ns: &[String] = if readable { &carol } else { &[] };
                    let got = index.search(&SearchQuery { sort, ascending, offset, limit, ..query("digits", readable_ns) }).unwrap();
                    assert_eq!(got, expected(&docs, readable, key, ascending, offset, limit), "{sort:?} ascending {ascending} at {offset}");
                }
            }
            // Then every fifth repository is deleted: the columns copied for the segment stay, and
            // the deleted documents must not come back through them.
            for id in (5..=600).step_by(5) {
                index.remove(id).unwrap();
            }
        }
    }

    #[test]
    fn filters_hold_whether_checked_in_the_query_or_in_columns() {
        // Twenty repositories: alice's eighteen carry `license:mit` (a filter most pass, checked
        // hit by hit in a column), bob's two carry `rare` (a term of the query); one of each
        // owner's is private.
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        let docs: Vec<RepoDoc> = (1..=20)
            .map(|id| {
                let bob = id > 18;
                let mut doc = repo(id, if bob { "bob" } else { "alice" }, &format!("net-{id}"), id == 1 || id == 20, "digits");
                doc.tags = if bob { vec!["rare".into()] } else { vec!["license:mit".into(), format!("t{}", id % 2)] };
                doc
            })
            .collect();
        index.upsert(&docs).unwrap();
        let search = |author: Option<&str>, tags: &[&str], readable: &[&str]| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            let readable: Vec<String> = readable.iter().map(|r| r.to_string()).collect();
            let mut ids = index.search(&SearchQuery { author, tags: &tags, ..query("digits", &readable) }).unwrap();
            ids.sort();
            ids
        };
        let alices: Vec<i64> = (2..=18).collect();
        assert_eq!(search(None, &["license:mit"], &[]), alices, "a common tag, the private one hidden");
        assert_eq!(search(None, &["license:mit"], &["alice"])[0], 1, "and shown to its owner");
        assert_eq!(search(None, &["license:mit", "t1"], &[]), (3..=17).step_by(2).collect::<Vec<i64>>(), "two common tags");
        assert_eq!(search(None, &["rare"], &[]), [19], "a rare tag, the private one hidden");
        assert_eq!(search(None, &["rare"], &["bob"]), [19, 20]);
        assert_eq!(search(None, &["rare", "license:mit"], &["alice", "bob"]), Vec::<i64>::new(), "a rare and a common tag");
        assert_eq!(search(Some("alice"), &[], &[]), alices, "a common author");
        assert_eq!(search(Some("bob"), &[], &["bob"]), [19, 20], "a rare author");
        assert_eq!(search(Some("alice"), &["rare"], &["alice", "bob"]), Vec::<i64>::new());
        assert_eq!(search(Some("carol"), &["license:mit"], &[]), Vec::<i64>::new(), "an author nobody is");
        assert_eq!(search(None, &["license:gpl"], &[]), Vec::<i64>::new(), "a tag nobody has");
    }

    #[test]
    fn an_index_of_another_schema_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        index.upsert(&[repo(1, "alice", "cnn", false, "digits")]).unwrap();
        drop(index);
        std::fs::write(dir.path().join("commons-schema-version"), "1").unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(index.search(&query("cnn", &[])).unwrap(), Vec::<i64>::new());
        assert_eq!(index.stale(&[(1, stamp(101, false))]).unwrap().0, [1], "the hub then fills it again");
    }
}
