//! Where credentials and the chosen hub live, following the Hugging Face clients so that a
//! `commons login` also serves `huggingface_hub` and `hf-hub`, and the other way round.
//!
//! - `$HF_HOME` (default `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`)
//! - token: `$HF_HOME/token` (mode 0600)
//! - hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`
//! - endpoint saved by `commons login`: `$HF_HOME/commons_endpoint`

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ClientError, Result};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8000";

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> PathBuf {
    env_path("HOME").unwrap_or_else(|| PathBuf::from("."))
}

pub fn hf_home() -> PathBuf {
    env_path("HF_HOME").unwrap_or_else(|| env_path("XDG_CACHE_HOME").unwrap_or_else(|| home().join(".cache")).join("huggingface"))
}

pub fn hub_cache_dir() -> PathBuf {
    env_path("HF_HUB_CACHE").unwrap_or_else(|| hf_home().join("hub"))
}

pub fn token_path() -> PathBuf {
    hf_home().join("token")
}

pub fn endpoint_path() -> PathBuf {
    hf_home().join("commons_endpoint")
}

fn read_trimmed(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::io_at("read", path, e)),
    }
}

/// The token saved by a login (ours or the Hugging Face CLI's), if any.
pub fn saved_token() -> Result<Option<String>> {
    read_trimmed(&token_path())
}

/// The endpoint saved by `commons login`, if any.
pub fn saved_endpoint() -> Result<Option<String>> {
    read_trimmed(&endpoint_path())
}

/// Writes `path` whole or not at all: a temporary file in the same directory, then a rename.
fn write_atomic(path: &Path, contents: &str, private: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ClientError::io_at("create", dir, e))?;
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ClientError::io_at("write", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| ClientError::io_at("replace", path, e))
}

/// Saves the token where the Hugging Face clients look for it, readable by the owner only.
pub fn save_token(token: &str) -> Result<PathBuf> {
    let path = token_path();
    write_atomic(&path, token.trim(), true)?;
    Ok(path)
}

pub fn save_endpoint(endpoint: &str) -> Result<PathBuf> {
    let path = endpoint_path();
    write_atomic(&path, &format!("{}\n", endpoint.trim_end_matches('/')), false)?;
    Ok(path)
}

/// Flag or `HF_ENDPOINT` (given as `explicit`), then the saved endpoint, then the local default.
pub fn resolve_endpoint(explicit: Option<&str>) -> Result<String> {
    if let Some(e) = explicit.filter(|e| !e.trim().is_empty()) {
        return Ok(e.trim().trim_end_matches('/').to_string());
    }
    Ok(saved_endpoint()?.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()))
}

/// Flag or `HF_TOKEN` (given as `explicit`), then the token file.
pub fn resolve_token(explicit: Option<&str>) -> Result<Option<String>> {
    if let Some(t) = explicit.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t.trim().to_string()));
    }
    saved_token()
}
