//! A typed client for a Commons hub, wire-compatible with the Hugging Face Hub API.
//!
//! - [`Client`]: one method per HTTP endpoint (whoami, repos, tree, commits, preupload, LFS
//!   batch, commit, resolve), errors decoded from the server's JSON into [`ClientError`].
//! - [`upload`]: files and folders → preupload → LFS objects streamed from disk (basic or
//!   multipart, as the server answers) → one NDJSON commit.
//! - [`download`]: a revision's files into the Hugging Face cache layout
//!   (`$HF_HOME/hub/{kind}s--ns--name/{blobs,snapshots,refs}`), resumable and verified, so files
//!   fetched by this client and by `huggingface_hub` / `hf-hub` are shared.
//! - compute: jobs, workers, assignments and credits (`commons-protocol` messages).
//! - [`config`]: where the token and the endpoint live (`$HF_HOME/token`, as the HF clients).

mod api;
mod compute;
pub mod config;
pub mod download;
mod error;
mod hashing;
mod progress;
mod repo;
pub mod upload;

pub use api::{BatchObject, Client, CommitInfo, CommitOutcome, CreatedRepo, LfsInfo, PreuploadAnswer, RepoInfo, TreeEntry, WhoAmI};
pub use error::{ClientError, Result};
pub use hashing::{FileDigest, git_blob_sha1_header};
pub use progress::{NoProgress, Progress, Transfer};
pub use repo::{RepoId, RepoKind};
