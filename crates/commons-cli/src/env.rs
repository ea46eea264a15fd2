//! Every environment variable Commons reads, in one list (as uv's `EnvVars`): the binary's
//! flags name them from here, and the library crates that read one themselves (the data cache,
//! the client's Hugging Face layout, the S3 credentials) each do it in one module, listed
//! below. The README's table is checked against [`EnvVars::ALL`] by a test.

pub struct EnvVars;

// Some are read by library crates (named on each), not by the binary: they are here so that
// the list is whole.
#[allow(dead_code)]
impl EnvVars {
    /// The hub's data directory (default `~/.commons`).
    pub const COMMONS_DATA_DIR: &'static str = "COMMONS_DATA_DIR";
    /// Address `commons serve` listens on (default `127.0.0.1:8000`).
    pub const COMMONS_LISTEN: &'static str = "COMMONS_LISTEN";
    /// Object store URL (`s3://bucket/prefix`, `file:///path`).
    pub const COMMONS_STORE_URL: &'static str = "COMMONS_STORE_URL";
    pub const COMMONS_DATABASE_URL: &'static str = "COMMONS_DATABASE_URL";
    /// Base URL of links handed to clients.
    pub const COMMONS_PUBLIC_URL: &'static str = "COMMONS_PUBLIC_URL";
    /// The `commons.toml` to read.
    pub const COMMONS_CONFIG: &'static str = "COMMONS_CONFIG";
    /// Serve only, without the embedded worker.
    pub const COMMONS_NO_WORKER: &'static str = "COMMONS_NO_WORKER";
    /// How long a silent worker keeps its unit.
    pub const COMMONS_LEASE_SECONDS: &'static str = "COMMONS_LEASE_SECONDS";
    /// Cores of the embedded worker.
    pub const COMMONS_WORKER_CORES: &'static str = "COMMONS_WORKER_CORES";
    /// Size limits of uploads and request bodies.
    pub const COMMONS_MAX_FILE_BYTES: &'static str = "COMMONS_MAX_FILE_BYTES";
    pub const COMMONS_MAX_COMMIT_BYTES: &'static str = "COMMONS_MAX_COMMIT_BYTES";
    pub const COMMONS_MAX_JSON_BYTES: &'static str = "COMMONS_MAX_JSON_BYTES";
    /// `open` to let people make their own accounts on the sign-up page.
    pub const COMMONS_SIGNUP: &'static str = "COMMONS_SIGNUP";
    /// Models the inference route runs at once, and how long a request waits for a turn.
    pub const COMMONS_INFERENCE_CONCURRENCY: &'static str = "COMMONS_INFERENCE_CONCURRENCY";
    pub const COMMONS_INFERENCE_QUEUE_SECONDS: &'static str = "COMMONS_INFERENCE_QUEUE_SECONDS";
    /// `json` for JSON log lines.
    pub const COMMONS_LOG_FORMAT: &'static str = "COMMONS_LOG_FORMAT";
    /// Log filter (tracing's `EnvFilter` syntax).
    pub const RUST_LOG: &'static str = "RUST_LOG";
    /// Cache of fetched data sets (default `~/.cache/commons`); read by `commons-data/src/fetch.rs`.
    pub const COMMONS_CACHE: &'static str = "COMMONS_CACHE";
    /// The hub and the token, as the Hugging Face clients read them.
    pub const HF_ENDPOINT: &'static str = "HF_ENDPOINT";
    pub const HF_TOKEN: &'static str = "HF_TOKEN";
    /// Where the token and the download cache live (the Hugging Face layout); read by
    /// `commons-client/src/config.rs`.
    pub const HF_HOME: &'static str = "HF_HOME";
    pub const HF_HUB_CACHE: &'static str = "HF_HUB_CACHE";
    pub const XDG_CACHE_HOME: &'static str = "XDG_CACHE_HOME";
    /// The home directory, under which the defaults above live.
    pub const HOME: &'static str = "HOME";
    /// Credentials and endpoint of an `s3://` store (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, ...):
    /// every variable with this prefix; read by `commons-storage/src/lib.rs`.
    pub const AWS_PREFIX: &'static str = "AWS_*";

    /// All of the above, as the README lists them.
    pub const ALL: &'static [&'static str] = &[
        Self::COMMONS_DATA_DIR,
        Self::COMMONS_LISTEN,
        Self::COMMONS_STORE_URL,
        Self::COMMONS_DATABASE_URL,
        Self::COMMONS_PUBLIC_URL,
        Self::COMMONS_CONFIG,
        Self::COMMONS_NO_WORKER,
        Self::COMMONS_LEASE_SECONDS,
        Self::COMMONS_WORKER_CORES,
        Self::COMMONS_MAX_FILE_BYTES,
        Self::COMMONS_MAX_COMMIT_BYTES,
        Self::COMMONS_MAX_JSON_BYTES,
        Self::COMMONS_SIGNUP,
        Self::COMMONS_INFERENCE_CONCURRENCY,
        Self::COMMONS_INFERENCE_QUEUE_SECONDS,
        Self::COMMONS_LOG_FORMAT,
        Self::RUST_LOG,
        Self::COMMONS_CACHE,
        Self::HF_ENDPOINT,
        Self::HF_TOKEN,
        Self::HF_HOME,
        Self::HF_HUB_CACHE,
        Self::XDG_CACHE_HOME,
        Self::HOME,
        Self::AWS_PREFIX,
    ];
}

/// A variable's value when it is set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::EnvVars;

    #[test]
    fn the_readme_lists_every_environment_variable_and_no_other() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
        let mut listed: Vec<String> = Vec::new();
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            for name in first_cell.split('`').skip(1).step_by(2) {
                if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '*') {
                    listed.push(name.to_string());
                }
            }
        }
        let mut known: Vec<String> = EnvVars::ALL.iter().map(|s| s.to_string()).collect();
        listed.sort();
        listed.dedup();
        known.sort();
        assert_eq!(listed, known, "README's environment table and EnvVars::ALL differ");
    }
}
