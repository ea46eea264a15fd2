//! Cards: the YAML front matter of a repository's `README.md`, parsed once per README blob (a
//! blob never changes) and kept as JSON with the tags it gives (`commons_card::hub_tags`). A
//! revision's `cardData` is the card of the README it holds; listings filter on the tags of the
//! README at the head of `main`.

use serde_json::{Map, Value};

use crate::{RepoError, Repos, Result};
use commons_db::Repo;

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
    pub async fn card_at(&self, repo: &Repo, commit: &str) -> Result<Map<String, Value>> {
        let Some(readme) = self.db.file_at(repo, commit, "README.md").await? else { return Ok(Map::new()) };
        self.card_of(&readme.sha256, readme.size).await
    }

    /// The card of README blob `sha256`, parsed now if it never was.
    pub async fn card_of(&self, sha256: &str, size: i64) -> Result<Map<String, Value>> {
        if let Some(json) = self.db.card(sha256).await? {
            return Ok(match serde_json::from_str(&json) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            });
        }
        if size as u64 > CARD_LIMIT {
            return Ok(Map::new());
        }
        let text = self.cas.read_to_vec(sha256, CARD_LIMIT).await?;
        self.index_card(sha256, &text).await
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
