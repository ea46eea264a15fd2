//! Request bodies, read only after the caller is authorised and never past a limit.
//!
//! Every handler that takes a body takes it raw ([`RawBody`]) as its last argument and reads it
//! here once its checks pass: an anonymous or unauthorised request is refused before a
//! byte of its body is read, and a body larger than its limit is refused with 413 as soon as its
//! `Content-Length` (or, for a chunked body, its running size) says so. A malformed body gets the
//! API's JSON error, never axum's plain-text rejection.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Size limits of what callers send. Operators set them (`commons serve` flags, `COMMONS_*`
/// variables or `commons.toml`); the defaults suit one machine.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A JSON request body (repository settings, LFS batch, preupload, paths-info, compute
    /// messages).
    pub json_body: u64,
    /// An NDJSON commit, inline (base64) files included. Spooled to disk as it arrives: what a
    /// commit holds in memory is one of its lines.
    pub commit_body: u64,
    /// One file (LFS object): larger declared sizes are refused before any URL is signed.
    pub file_size: u64,
    /// Objects in one LFS batch request.
    pub batch_objects: usize,
    /// Discussion writes (new discussions and pull requests, comments, edits) one account may
    /// make in ten minutes, on any repositories: a lively review, or a client's test suite, fits;
    /// flooding every public repository does not.
    pub discussion_writes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { json_body: 1 << 20, commit_body: 1 << 30, file_size: 50 << 30, batch_objects: 1000, discussion_writes: 600 }
    }
}

/// 413 with the limit in words.
pub fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", format!("{what} is larger than this hub's limit of {limit} bytes"))
}

/// Bytes past a limit that are still read, and dropped, before a 413 is answered: a client that
/// is still sending its body then reads the refusal, where closing on it would show it a broken
/// connection instead. Bodies claiming more than this over the limit are refused at once.
const DRAIN_PAST_LIMIT: u64 = 32 << 20;

/// Reads `body` whole, refusing it (413) once it passes `limit` bytes. `declared` is the
/// request's `Content-Length`, checked before anything is read.
pub async fn read_limited(body: Body, declared: Option<u64>, limit: u64, what: &str) -> ApiResult<Bytes> {
    if let Some(n) = declared.filter(|&n| n > limit) {
        if n - limit <= DRAIN_PAST_LIMIT {
            drain(body, n).await;
        }
        return Err(too_large(what, limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20) as usize);
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("{what} was interrupted: {e}")))?;
        if buf.len() as u64 + frame.len() as u64 > limit {
            let seen = buf.len() as u64 + frame.len() as u64;
            drop(buf);
            drain_stream(stream, seen, limit.saturating_add(DRAIN_PAST_LIMIT)).await;
            return Err(too_large(what, limit));
        }
        buf.extend_from_slice(&frame);
    }
    Ok(Bytes::from(buf))
}

/// How long a refused body is drained at most: a client that stops sending without ending its
/// body gets its answer then.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what is left of a body, up to `upto` bytes in all.
async fn drain(body: Body, upto: u64) {
    drain_stream(body.into_data_stream(), 0, upto).await;
}

async fn drain_stream(mut stream: axum::body::BodyDataStream, mut seen: u64, upto: u64) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while seen <= upto {
            match stream.next().await {
                Some(Ok(frame)) => seen += frame.len() as u64,
                _ => return,
            }
        }
    })
    .await;
}

/// Parses a JSON body; a syntax or shape error is a 400 naming what is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("{what} is not valid: {e}")))
}

/// A raw request body with its declared length, read later by [`Self::json`] or [`Self::bytes`].
pub struct RawBody {
    body: Body,
    declared: Option<u64>,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, ApiError> {
        let declared =
            req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        Ok(Self { body: req.into_body(), declared })
    }
}

impl RawBody {
    /// The body, at most `limit` bytes.
    pub async fn bytes(self, limit: u64, what: &str) -> ApiResult<Bytes> {
        read_limited(self.body, self.declared, limit, what).await
    }

    /// The body as it arrives, for a handler that checks and stores it piece by piece: refused
    /// (413) when its `Content-Length` is over `limit`, before a byte is read, and otherwise as
    /// soon as its running size passes `limit`.
    pub async fn frames(self, limit: u64, what: &str) -> ApiResult<impl futures::Stream<Item = ApiResult<Bytes>> + use<>> {
        if let Some(n) = self.declared.filter(|&n| n > limit) {
            if n - limit <= DRAIN_PAST_LIMIT {
                drain(self.body, n).await;
            }
            return Err(too_large(what, limit));
        }
        let what = what.to_string();
        let mut seen = 0u64;
        Ok(self.body.into_data_stream().map(move |frame| {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("{what} was interrupted: {e}")))?;
            seen += frame.len() as u64;
            if seen > limit {
                return Err(too_large(&what, limit));
            }
            Ok(frame)
        }))
    }

    /// The body written to a temporary file in `dir` as it arrives, split into its non-blank
    /// lines: for NDJSON bodies whose whole may be larger than what a request should hold in
    /// memory. Refused with 413 past `limit` bytes, or when one line passes `line_limit` bytes or
    /// the body has more than `max_lines` lines, as soon as that is known.
    pub async fn spool_lines(self, dir: &std::path::Path, limits: SpoolLimits, what: &str) -> ApiResult<SpooledLines> {
        use std::io::Write;
        let frames = self.frames(limits.total, what).await?;
        futures::pin_mut!(frames);
        let file = tempfile::tempfile_in(dir).map_err(ApiError::internal)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut lines = Vec::new();
        // The line being read: where it starts and whether it has more than whitespace so far.
        let (mut start, mut offset, mut blank) = (0u64, 0u64, true);
        while let Some(frame) = frames.next().await {
            let frame = frame?;
            out.write_all(&frame).map_err(ApiError::internal)?;
            for (i, &b) in frame.iter().enumerate() {
                let at = offset + i as u64;
                if b == b'\n' {
                    if !blank {
                        if lines.len() == limits.max_lines {
                            return Err(ApiError::bad_request(format!("{what} has more than {} lines", limits.max_lines)));
                        }
                        lines.push((start, at - start));
                    }
                    (start, blank) = (at + 1, true);
                } else if !b.is_ascii_whitespace() {
                    blank = false;
                }
                if at + 1 - start > limits.line {
                    return Err(too_large(&format!("one line of {what}"), limits.line));
                }
            }
            offset += frame.len() as u64;
        }
        if !blank {
            if lines.len() == limits.max_lines {
                return Err(ApiError::bad_request(format!("{what} has more than {} lines", limits.max_lines)));
            }
            lines.push((start, offset - start));
        }
        let file = out.into_inner().map_err(|e| ApiError::internal(e.error()))?;
        Ok(SpooledLines { file: std::sync::Arc::new(file), lines })
    }

    /// The body as JSON, at most `limit` bytes.
    pub async fn json<T: DeserializeOwned>(self, limit: u64, what: &str) -> ApiResult<T> {
        let bytes = self.bytes(limit, what).await?;
        parse_json(&bytes, what)
    }

    /// [`Self::json`] for a body clients may leave out: empty, blank or `null` is the default.
    pub async fn json_or_default<T: DeserializeOwned + Default>(self, limit: u64, what: &str) -> ApiResult<T> {
        let bytes = self.bytes(limit, what).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(T::default());
        }
        parse_json(&bytes, what)
    }

    /// The body as a stream (an upload whose size is checked as it arrives).
    pub fn into_inner(self) -> Body {
        self.body
    }
}

/// Bounds of a spooled NDJSON body ([`RawBody::spool_lines`]).
#[derive(Clone, Copy, Debug)]
pub struct SpoolLimits {
    /// The whole body.
    pub total: u64,
    /// One line.
    pub line: u64,
    /// Non-blank lines.
    pub max_lines: usize,
}

/// A body kept in an unnamed temporary file (gone when the last handle is dropped), read back
/// one line at a time.
#[derive(Clone)]
pub struct SpooledLines {
    file: std::sync::Arc<std::fs::File>,
    /// Offset and length of each non-blank line.
    lines: Vec<(u64, u64)>,
}

impl SpooledLines {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i` (0-based), read on a blocking thread.
    pub async fn line(&self, i: usize) -> ApiResult<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (offset, len) = self.lines[i];
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; len as usize];
            file.read_exact_at(&mut buf, offset).map(|()| buf)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }
}
