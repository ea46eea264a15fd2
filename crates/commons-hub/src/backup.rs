//! `commons backup` and `commons restore` for the embedded mode: a hub whose metadata is the
//! SQLite file of its data directory and whose store is a local directory.
//!
//! A backup is a directory: `commons.db`, a consistent snapshot of the database taken while
//! the hub may keep serving (SQLite's `VACUUM INTO`, one read transaction); `objects/`, every
//! xorb that snapshot's index names, copied after it (a xorb never changes once written, and
//! the collector deletes one only after nothing has used it for its grace period, so each is
//! still there to copy); `signing.key`, so URLs and upload tokens the hub signed stay valid;
//! `backup.json`, what it holds. Uploads in flight when the snapshot was taken are not in it,
//! exactly as a commit after it is not. The search index is not copied: a hub rebuilds it from
//! the database when it starts.

use std::path::{Path, PathBuf};

use commons_db::Db;

/// What a backup or a restore holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    pub xorbs: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Db(#[from] commons_db::DbError),
    #[error("{0}")]
    Storage(#[from] commons_storage::StorageError),
    #[error("{0}")]
    Refused(String),
}

const DATABASE: &str = "commons.db";
const SIGNING_KEY: &str = "signing.key";
const OBJECTS: &str = "objects";
const MANIFEST: &str = "backup.json";

/// The local store's directory of a hub on `data_dir` with store `store_url`.
fn local_objects(data_dir: &Path, store_url: Option<&str>) -> Result<PathBuf, BackupError> {
    let Some(url) = store_url else { return Ok(data_dir.join(OBJECTS)) };
    commons_storage::local_path_of(url)?.ok_or_else(|| {
        BackupError::Refused(
            "the store is not a local directory: back up the bucket with the object store's own tools (versioning, replication); `commons backup` copies local stores".into(),
        )
    })
}

fn xorb_path(root: &Path, hash: &str) -> PathBuf {
    root.join("xorbs").join("default").join(hash)
}

/// Copies `from` to `to` through a temporary name and fsyncs it: a crash leaves either no file
/// or the whole one.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<u64> {
    let partial = to.with_extension("partial");
    let n = std::fs::copy(from, &partial)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, to)?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Copies every xorb `index` names from store `from` to store `to`, checking each size.
fn copy_xorbs(index: &[(String, u64)], from: &Path, to: &Path) -> Result<BackupReport, BackupError> {
    let dir = to.join("xorbs").join("default");
    std::fs::create_dir_all(&dir)?;
    let mut report = BackupReport::default();
    for (hash, size) in index {
        let source = xorb_path(from, hash);
        let copied = copy_durably(&source, &xorb_path(to, hash))
            .map_err(|e| BackupError::Refused(format!("xorb {hash} named by the index cannot be copied from {}: {e}", source.display())))?;
        if copied != *size {
            return Err(BackupError::Refused(format!("xorb {hash} holds {copied} bytes where the index says {size}")));
        }
        report.xorbs += 1;
        report.bytes += copied;
    }
    sync_dir(&dir)?;
    Ok(report)
}

/// Writes a backup of the hub on `data_dir` (store `store_url`, local) into `out`, which must
/// not exist or be empty. The hub may be serving meanwhile.
pub async fn backup(data_dir: &Path, store_url: Option<&str>, out: &Path) -> Result<BackupReport, BackupError> {
    let objects = local_objects(data_dir, store_url)?;
    let database = data_dir.join(DATABASE);
    if !database.exists() {
        return Err(BackupError::Refused(format!("there is no hub in {} (no {DATABASE})", data_dir.display())));
    }
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        return Err(BackupError::Refused(format!("{} is not empty: a backup goes into a new directory", out.display())));
    }
    std::fs::create_dir_all(out)?;
    let db = Db::open(&database).await?;
    let snapshot = out.join(DATABASE);
    db.snapshot_into(&snapshot).await?;
    db.close().await;
    let snapshot_db = Db::open(&snapshot).await?;
    let index = snapshot_db.xorb_sizes().await?;
    snapshot_db.close().await;
    let out_dir = out.to_path_buf();
    let data_dir = data_dir.to_path_buf();
    let report = tokio::task::spawn_blocking(move || -> Result<BackupReport, BackupError> {
        let report = copy_xorbs(&index, &objects, &out_dir.join(OBJECTS))?;
        let key = data_dir.join(SIGNING_KEY);
        if key.exists() {
            copy_durably(&key, &out_dir.join(SIGNING_KEY))?;
        }
        let manifest = serde_json::json!({
            "created_at": commons_db::now_unix(),
            "commons": env!("CARGO_PKG_VERSION"),
            "xorbs": report.xorbs,
            "bytes": report.bytes,
        });
        std::fs::write(out_dir.join(MANIFEST), serde_json::to_vec_pretty(&manifest).unwrap_or_default())?;
        sync_dir(&out_dir)?;
        Ok(report)
    })
    .await
    .map_err(|e| BackupError::Refused(format!("the copy stopped: {e}")))??;
    Ok(report)
}

/// Makes `data_dir` (new, or without a database) the hub `backup` holds, its store the local
/// directory `store_url` names (default `data_dir/objects`). Checks every xorb the database
/// names is there with its size before it answers.
pub async fn restore(backup: &Path, data_dir: &Path, store_url: Option<&str>) -> Result<BackupReport, BackupError> {
    let objects = local_objects(data_dir, store_url)?;
    let source = backup.join(DATABASE);
    if !source.exists() || !backup.join(MANIFEST).exists() {
        return Err(BackupError::Refused(format!("{} is not a backup (no {DATABASE} or {MANIFEST})", backup.display())));
    }
    let database = data_dir.join(DATABASE);
    if database.exists() {
        return Err(BackupError::Refused(format!(
            "{} already holds a hub: restore into a new data directory (nothing was changed)",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir)?;
    let snapshot_db = Db::open(&source).await?;
    let index = snapshot_db.xorb_sizes().await?;
    snapshot_db.close().await;
    let (backup_dir, data) = (backup.to_path_buf(), data_dir.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<BackupReport, BackupError> {
        let report = copy_xorbs(&index, &backup_dir.join(OBJECTS), &objects)?;
        let key = backup_dir.join(SIGNING_KEY);
        if key.exists() {
            copy_durably(&key, &data.join(SIGNING_KEY))?;
        }
        // The database last: a data directory with a database is a hub, and now a whole one.
        copy_durably(&backup_dir.join(DATABASE), &data.join(DATABASE))?;
        sync_dir(&data)?;
        Ok(report)
    })
    .await
    .map_err(|e| BackupError::Refused(format!("the copy stopped: {e}")))?
}
