//! Validation at the edge: names of repositories, files and refs, checked before anything is
//! stored, so bad input gets a precise 400 and changes nothing.

use crate::RepoError;

pub const MAX_NAME_LEN: usize = 96;
pub const MAX_PATH_LEN: usize = 1024;
pub const MAX_REF_LEN: usize = 255;

/// A namespace or repository name: ASCII letters, digits, `-`, `_`, `.`; starts alphanumeric;
/// no `--` or `..`; not ending in `.git`; at most 96 characters.
pub fn validate_repo_name(part: &str, what: &str) -> Result<(), RepoError> {
    let bad = |why: &str| Err(RepoError::Invalid(format!("invalid {what} {part:?}: {why}")));
    if part.is_empty() {
        return bad("must not be empty");
    }
    if part.len() > MAX_NAME_LEN {
        return bad("longer than 96 characters");
    }
    if !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    if !part.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if part.contains("--") || part.contains("..") {
        return bad("'--' and '..' are not allowed");
    }
    if part.ends_with(".git") || part.ends_with('.') || part.ends_with('-') {
        return bad("must not end with '.git', '.' or '-'");
    }
    Ok(())
}

/// Names no account may take: the first segments of the hub's own URLs (API, pages, static
/// files, the Xet CAS), so `/{user}` and `/{user}/{repo}` never mean two things, and the
/// operator's account, which the hub makes itself.
pub const RESERVED_NAMES: &[&str] = &[
    "api",
    "models",
    "datasets",
    "algorithms",
    "spaces",
    "health",
    "static",
    "xet",
    "new",
    "settings",
    "login",
    "logout",
    "join",
    "signup",
    "users",
    "organizations",
    "leaderboards",
    "jobs",
    "workers",
    "credits",
    "search",
    "docs",
    "commons",
];

/// A new account's name: a valid namespace that is not [`RESERVED_NAMES`] (case-insensitively,
/// as URLs are read by people).
pub fn validate_user_name(name: &str) -> Result<(), RepoError> {
    validate_namespace_name(name, "user name")
}

/// An organization's name: a namespace, as a user's name is (the two never share one).
pub fn validate_org_name(name: &str) -> Result<(), RepoError> {
    validate_namespace_name(name, "organization name")
}

fn validate_namespace_name(name: &str, what: &str) -> Result<(), RepoError> {
    validate_repo_name(name, what)?;
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(RepoError::Invalid(format!("the name {name:?} is reserved")));
    }
    Ok(())
}

/// A file path inside a repository: relative, `/`-separated, no empty, `.` or `..` segments,
/// no control characters, nothing under `.git/`, nothing a Windows client would read as
/// leaving the repository, at most 1024 bytes.
pub fn validate_file_path(path: &str) -> Result<(), RepoError> {
    let bad = |why: &str| Err(RepoError::Invalid(format!("invalid path {path:?}: {why}")));
    if path.is_empty() {
        return bad("must not be empty");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return bad("must be relative");
    }
    if path.chars().any(|c| c.is_control()) {
        return bad("control characters are not allowed");
    }
    // A backslash is a character of a name here, as on the Hub; but a path that a Windows
    // client would read as leaving its folder (`..\\x`, `\\x`, `C:\\x`, `C:x`) is refused as the
    // Hub refuses it, with 422.
    let first = path.split(['/', '\\']).next().unwrap_or_default();
    let drive = path.len() >= 2 && path.as_bytes()[0].is_ascii_alphabetic() && path.as_bytes()[1] == b':';
    if first == ".." || first == "." || path.starts_with('\\') || drive {
        return Err(RepoError::Unprocessable(format!("invalid path {path:?}: it would leave the repository on Windows")));
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("'.' and '..' segments are not allowed"),
            ".git" => return bad("'.git' is reserved"),
            _ => {}
        }
    }
    Ok(())
}

/// A branch or tag name, by git's ref-name rules.
pub fn validate_ref_name(name: &str) -> Result<(), RepoError> {
    let bad = |why: &str| Err(RepoError::Invalid(format!("invalid ref name {name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_REF_LEN {
        return bad("must be 1 to 255 characters");
    }
    if name.chars().any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c)) {
        return bad("spaces, control characters and ~^:?*[\\ are not allowed");
    }
    if name.contains("..") || name.contains("//") || name.contains("@{") {
        return bad("'..', '//' and '@{' are not allowed");
    }
    if name.starts_with('/') || name.ends_with('/') || name.ends_with('.') || name.ends_with(".lock") {
        return bad("must not start or end with '/', or end with '.' or '.lock'");
    }
    // git refuses these too: a leading `-` reads as an option on a command line, and a
    // component starting with `.` is hidden.
    if name.starts_with('-') || name.split('/').any(|c| c.starts_with('.')) {
        return bad("must not start with '-' or have a component starting with '.'");
    }
    if name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("a 40-hex name would shadow commit ids");
    }
    // `refs/convert/parquet` is written by the hub alone (a dataset's Parquet export): a user
    // who could push there could pass anything off as the export of their data.
    if name.starts_with("refs/") {
        return bad("names under 'refs/' are the hub's own (refs/convert/parquet)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in ["gpt2", "my-model_v1.2", "A", "x".repeat(96).as_str()] {
            assert!(validate_repo_name(ok, "name").is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a--b", "a..b", "x.git", "a/b", "a b", "é", &"x".repeat(97), "a\n"] {
            assert!(validate_repo_name(bad, "name").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_paths() {
        for ok in ["a.txt", "dir/sub/file.bin", ".gitattributes", "weird name (1).txt", "ünï/cödé"] {
            assert!(validate_file_path(ok).is_ok(), "{ok}");
        }
        let long = "a/".repeat(600);
        for bad in [
            "",
            "/abs",
            "../up",
            "a/../b",
            "a//b",
            "a/./b",
            "x\0y",
            "tab\there",
            "..\\up",
            "\\\\host\\x",
            "C:\\x",
            ".git/config",
            "dir/",
            long.as_str(),
        ] {
            assert!(validate_file_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ref_names() {
        for ok in ["main", "feature/x", "v1.0", "refs-pr-1"] {
            assert!(validate_ref_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-",
            "-x",
            ".hidden",
            "a/.b",
            "a..b",
            "a b",
            "x~1",
            "end/",
            "/start",
            "x.lock",
            "a:b",
            &"f".repeat(40),
            "refs/convert/parquet",
        ] {
            assert!(validate_ref_name(bad).is_err(), "{bad:?}");
        }
    }
}
