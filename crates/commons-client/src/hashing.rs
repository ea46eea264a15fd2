//! The two object ids the hub speaks: sha256 (LFS oid) and git's blob SHA-1 (regular files).

use std::io::Read;
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{ClientError, Result};

/// Git hashes a blob as `blob <size>\0` followed by the content.
pub fn git_blob_sha1_header(size: u64) -> Vec<u8> {
    format!("blob {size}\0").into_bytes()
}

/// Both ids of a local file plus what preupload needs, computed in one streaming pass.
#[derive(Debug, Clone)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: String,
    pub git_sha1: String,
    /// The first 512 bytes: the server looks for NUL bytes to tell binary files.
    pub sample: Vec<u8>,
}

impl FileDigest {
    /// Reads `path` once. Fails if the file changes size while it is read, since the git id
    /// commits to the size up front.
    pub fn of_file(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| ClientError::io_at("open", path, e))?;
        let size = file.metadata().map_err(|e| ClientError::io_at("stat", path, e))?.len();
        let mut sha256 = Sha256::new();
        let mut sha1 = Sha1::new();
        sha1.update(git_blob_sha1_header(size));
        let mut sample = Vec::with_capacity(512);
        let mut buf = vec![0u8; 1 << 20];
        let mut read_total = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| ClientError::io_at("read", path, e))?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if sample.len() < 512 {
                let take = (512 - sample.len()).min(n);
                sample.extend_from_slice(&chunk[..take]);
            }
            sha256.update(chunk);
            sha1.update(chunk);
            read_total += n as u64;
        }
        if read_total != size {
            return Err(ClientError::Invalid(format!(
                "{} changed while it was read ({size} bytes at start, {read_total} read)",
                path.display()
            )));
        }
        Ok(Self { size, sha256: hex::encode(sha256.finalize()), git_sha1: hex::encode(sha1.finalize()), sample })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_git_and_sha256sum() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hello.txt");
        std::fs::write(&path, b"hello\n").expect("write");
        let d = FileDigest::of_file(&path).expect("digest");
        // `printf 'hello\n' | git hash-object --stdin` and `sha256sum`.
        assert_eq!(d.git_sha1, "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(d.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!(d.size, 6);
        assert_eq!(d.sample, b"hello\n");
        std::fs::write(&path, b"").expect("write");
        let empty = FileDigest::of_file(&path).expect("digest");
        assert_eq!(empty.git_sha1, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }
}
