//! Everything the client can fail on, worded for the person at the terminal.

use std::path::Path;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `message` is its own explanation.
    #[error("{}", describe_api(*.status, .code.as_deref(), .message))]
    Api { status: u16, code: Option<String>, message: String },
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Downloaded or uploaded bytes do not hash to what the server announced.
    #[error("{path}: content has {algo} {actual}, expected {expected}; the partial file was discarded")]
    Integrity { path: String, algo: &'static str, expected: String, actual: String },
    /// Bad input from the caller: a repo name, a path, a pattern.
    #[error("{0}")]
    Invalid(String),
    /// The server's answer does not follow the protocol.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
}

fn describe_api(status: u16, code: Option<&str>, message: &str) -> String {
    let mut text = match code {
        Some(code) if !code.is_empty() && code != message => format!("{message} (HTTP {status}, {code})"),
        _ => format!("{message} (HTTP {status})"),
    };
    if status == 401 {
        text.push_str("; check the token (`commons login`, --token or HF_TOKEN)");
    }
    text
}

impl ClientError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn io_at(what: &str, path: &Path, source: std::io::Error) -> Self {
        Self::Io { context: format!("cannot {what} {}", path.display()), source }
    }

    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine-readable error code the server sent (`RepoNotFound`, `RevisionNotFound`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}
