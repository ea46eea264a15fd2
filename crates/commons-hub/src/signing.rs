//! Signed URLs for LFS uploads: the clients send part and object uploads with no credentials, so
//! the URL itself carries an expiring HMAC over exactly what it permits.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

pub struct UrlSigner {
    key: [u8; 32],
}

/// How long a handed-out upload URL stays valid.
pub const UPLOAD_URL_TTL_SECS: i64 = 24 * 3600;

impl UrlSigner {
    /// A new random key.
    pub fn fresh_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        key
    }

    /// A signer with `key` (32 bytes; `None` otherwise).
    pub fn from_key(key: &[u8]) -> Option<Self> {
        Some(Self { key: <[u8; 32]>::try_from(key).ok()? })
    }

    /// Loads the key from `path`, creating it (atomically, mode 0600) on first start, so URLs stay
    /// valid across restarts and across servers sharing a data directory.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        if let Ok(bytes) = std::fs::read(path)
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(Self { key });
        }
        let key = Self::fresh_key();
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&key)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(Self { key })
    }

    pub fn sign(&self, message: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn verify(&self, message: &str, signature: &str) -> bool {
        let Ok(sig) = hex::decode(signature) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(message.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}
