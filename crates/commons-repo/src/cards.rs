//! Cards: the YAML front matter of a repository's `README.md`, parsed once per README blob (a
//! blob never changes) and kept as JSON with the tags it gives (`commons_card::hub_tags`). A
//! revision's `cardData` is the card of the README it holds; listings filter on the tags of the
//! README at the head of `main`.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{RepoError, Repos, Result};
use commons_db::Repo;

/// A README's card as pages and listings show it: its front matter, and the tags it gives
/// (`commons_card::hub_tags`).
#[derive(Debug, Default)]
pub struct CardView {
    pub metadata: Map<String, Value>,
    pub tags: Vec<String>,
    /// About what it holds, in bytes (its front matter as JSON, its tags).
    bytes: u64,
}

/// Memory the cards kept may take: front matter may be as large as `CARD_LIMIT`, so the
/// cache is bounded in bytes, not only in cards.
const CARDS_BYTES: u64 = 64 * 1024 * 1024;

/// Cards already read, by README blob: a blob never changes, so neither does its card. A
/// listing shows twenty or thirty cards a page; each was parsed from JSON and its tags worked
/// out again on every view before these were kept.
pub(crate) struct Cards(quick_cache::sync::Cache<String, Arc<CardView>, CardWeight>);

#[derive(Clone)]
pub(crate) struct CardWeight;

impl quick_cache::Weighter<String, Arc<CardView>> for CardWeight {
    fn weight(&self, key: &String, card: &Arc<CardView>) -> u64 {
        key.len() as u64 + card.bytes
    }
}

impl Default for Cards {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(5_000, CARDS_BYTES, CardWeight))
    }
}

/// Largest README whose card is read: front matter is at the top, and a card is for people.
pub const CARD_LIMIT: u64 = 1024 * 1024;

impl Repos {
    /// Checks the front matter of README `text` as a commit is about to store it: a README whose
    /// YAML does not parse is refused, naming the line.
    pub fn check_card(text: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(text).map_err(|_| RepoError::Invalid("README.md is not UTF-8".into()))?;
        commons_card::Card::parse(text).map_err(|e| RepoError::Invalid(format!("README.md: {e}")))?;
        Ok(())
    }

    /// Records the card of README blob `sha256` whose bytes are `text`. A README that is not a
    /// valid card (committed before cards were checked) is recorded as having no metadata.
    pub async fn index_card(&self, sha256: &str, text: &[u8]) -> Result<Map<String, Value>> {
        let metadata =
            std::str::from_utf8(text).ok().and_then(|t| commons_card::Card::parse(t).ok()).map(|c| c.metadata).unwrap_or_default();
        let tags = commons_card::typed_hub_tags(&metadata);
        let json = Value::Object(metadata.clone()).to_string();
        self.db.record_card(sha256, &json, &tags).await?;
        Ok(metadata)
    }

    /// The card of `repo` at `commit`: the front matter of its `README.md`, empty without one.
    pub async fn card_at(&self, repo: &Repo, commit: &str) -> Result<Arc<CardView>> {
        let Some(readme) = self.db.file_at(repo, commit, "README.md").await? else { return Ok(Arc::default()) };
        self.card_of(&readme.sha256, readme.size).await
    }

    /// The card of README blob `sha256`, parsed now if it never was.
    pub async fn card_of(&self, sha256: &str, size: i64) -> Result<Arc<CardView>> {
        if let Some(card) = self.cards.0.get(sha256) {
            return Ok(card);
        }
        let metadata = match self.db.card(sha256).await? {
            Some(json) => match serde_json::from_str(&json) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            },
            // Too large to be read as a card: none, and nothing recorded or kept.
            None if size as u64 > CARD_LIMIT => return Ok(Arc::default()),
            None => {
                let text = self.cas.read_to_vec(sha256, CARD_LIMIT).await?;
                self.index_card(sha256, &text).await?
            }
        };
        let tags = commons_card::hub_tags(&metadata);
        let bytes = serde_json::to_vec(&metadata).map_or(0, |json| json.len()) + tags.iter().map(String::len).sum::<usize>();
        let card = Arc::new(CardView { tags, metadata, bytes: bytes as u64 });
        self.cards.0.insert(sha256.to_string(), card.clone());
        Ok(card)
    }

    /// Parses the cards of READMEs stored before cards were recorded (a hub upgraded in place),
    /// so that listings filter on their tags. Returns how many were parsed.
    pub async fn index_missing_cards(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let batch = self.db.readmes_without_card(100).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            for sha256 in batch {
                let size = self.db.blob(&sha256).await?.map_or(i64::MAX, |(_, size, _)| size);
                if size as u64 > CARD_LIMIT {
                    self.db.record_card(&sha256, "{}", &[]).await?;
                } else {
                    let text = self.cas.read_to_vec(&sha256, CARD_LIMIT).await?;
                    self.index_card(&sha256, &text).await?;
                }
                done += 1;
            }
        }
    }
}
