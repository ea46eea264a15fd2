//! Download counting, as the Hugging Face Hub counts: a GET of a repository's file through
//! `/resolve` counts once per client per repository per day. A client is the account of the
//! token, or else the caller's address, kept only as an HMAC keyed with the hub's secret and the
//! day, so no address is stored and one address is not linkable across days.
//!
//! Counting must not slow downloads down: a (repository, day, client) already seen by this
//! process is dropped in memory, a new one is queued, and one task writes what is queued in one
//! transaction at a time (the database keeps the count exact across processes and restarts).

use std::net::IpAddr;

use commons_db::{Db, Download};
use commons_repo::Repos;

use crate::signing::UrlSigner;

/// Downloads queued for the writer at most; past that, counts are dropped rather than slowing
/// the downloads they count.
const QUEUE: usize = 10_000;
/// (repository, day, client) triples remembered as already counted.
const SEEN: usize = 100_000;
/// Downloads written in one transaction at most.
const BATCH: usize = 1_000;

pub struct DownloadCounter {
    seen: quick_cache::sync::Cache<Download, ()>,
    queue: tokio::sync::mpsc::Sender<Download>,
}

/// Who downloads: the account of the token, or the address the request came from.
pub enum Client {
    User(i64),
    Address(IpAddr),
    Unknown,
}

impl DownloadCounter {
    /// A counter whose writer task runs on the current runtime until the process ends; the
    /// search index learns the new counts (searches sort by them).
    pub fn start(db: Db, repos: Repos) -> Self {
        let (queue, mut queued) = tokio::sync::mpsc::channel::<Download>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while queued.recv_many(&mut batch, BATCH).await > 0 {
                match db.record_downloads(&batch).await {
                    Ok(counted) => repos.reindex_ids_or_log(&counted).await,
                    Err(e) => tracing::warn!(error = %e, count = batch.len(), "could not record downloads"),
                }
                batch.clear();
            }
        });
        Self { seen: quick_cache::sync::Cache::new(SEEN), queue }
    }

    /// Counts a download of `repo_id` by `client`.
    pub fn count(&self, signer: &UrlSigner, repo_id: i64, client: Client) {
        let day = commons_db::now_unix() / 86_400;
        let client = match client {
            Client::User(id) => format!("u:{id}"),
            Client::Address(ip) => format!("a:{}", &signer.sign(&format!("download-client:{day}:{ip}"))[..32]),
            Client::Unknown => return,
        };
        let download = Download { repo_id, day, client };
        if self.seen.get(&download).is_some() {
            return;
        }
        self.seen.insert(download.clone(), ());
        if self.queue.try_send(download).is_err() {
            tracing::debug!(repo_id, "download queue full; a download went uncounted");
        }
    }
}

/// The address a request came from, when the server was started with it (`commons serve`).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(info.map(|info| info.0.ip())))
    }
}
