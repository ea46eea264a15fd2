//! Passwords of accounts that sign in from a browser: argon2id (the `argon2` crate's defaults,
//! OWASP's recommended parameters: 19 MiB, two passes), stored as PHC strings that carry their own
//! salt and parameters. Hashing is slow on purpose; callers run it off the async threads and
//! bound how many run at once.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

use crate::RepoError;

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted: hashing cost grows with it, and no person types more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A new password, checked for length.
pub fn validate_password(password: &str) -> Result<(), RepoError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(RepoError::Invalid(format!("a password needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(RepoError::Invalid(format!("a password may have at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// The PHC string of `password` under a fresh salt (blocking: tens of milliseconds).
pub fn hash_password(password: &str) -> Result<String, RepoError> {
    validate_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| RepoError::Invalid(format!("could not hash the password: {e}")))
}

/// Whether `password` matches `phc` (blocking). A malformed stored hash matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody has, verified against when an account does not exist (or has no
/// password), so a sign-in takes as long whether or not the name is taken.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash_password("no account has this password").unwrap_or_default());
    &DECOY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert_ne!(hash, hash_password("correct horse battery").expect("hash"), "each hash has its own salt");
        assert!(!verify_password("anything", "not a phc string"));
        assert!(hash_password("short").is_err());
    }
}
