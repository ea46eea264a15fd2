//! One method per hub endpoint. Requests to the hub carry the Bearer token; the signed LFS
//! URLs the hub hands out are sent without it, as the protocol requires.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, HeaderMap, LINK};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ClientError, Result};
use crate::repo::RepoId;

/// Characters left bare in one URL path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A revision is one path segment: `feature/x` travels as `feature%2Fx`.
pub(crate) fn encode_revision(rev: &str) -> String {
    utf8_percent_encode(rev, SEGMENT).to_string()
}

/// A file path keeps its `/` separators; each segment is encoded.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

#[derive(Debug, Clone, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    #[serde(default)]
    pub fullname: Option<String>,
    #[serde(default)]
    pub auth: Option<Value>,
}

impl WhoAmI {
    /// The token's role (`read` / `write`) when the server reports it.
    pub fn token_role(&self) -> Option<&str> {
        self.auth.as_ref()?.get("accessToken")?.get("role")?.as_str()
    }
}

#[derive(Debug, Clone)]
pub struct CreatedRepo {
    pub url: String,
    /// The repository was there already (only with `exist_ok`).
    pub existed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoInfo {
    pub id: String,
    /// The resolved commit of the requested revision.
    pub sha: Option<String>,
    #[serde(default)]
    pub private: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LfsInfo {
    pub oid: String,
    pub size: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    /// Git blob SHA-1 for files.
    pub oid: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

impl TreeEntry {
    pub fn is_file(&self) -> bool {
        self.kind == "file"
    }

    /// What the cache names this file's blob: the sha256 for LFS files, the git SHA-1 otherwise
    /// (the `X-Linked-Etag` / `ETag` of `/resolve`).
    pub fn etag(&self) -> &str {
        self.lfs.as_ref().map(|l| l.oid.as_str()).unwrap_or(&self.oid)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitAuthor {
    pub user: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub message: String,
    pub date: String,
    #[serde(default)]
    pub authors: Vec<CommitAuthor>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PreuploadFile {
    pub path: String,
    pub size: u64,
    pub sample: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PreuploadAnswer {
    pub path: String,
    #[serde(rename = "uploadMode")]
    pub upload_mode: String,
    #[serde(rename = "shouldIgnore", default)]
    pub should_ignore: bool,
    /// The id the file has at the revision now, if it exists there.
    #[serde(default)]
    pub oid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchAction {
    pub href: String,
    #[serde(default)]
    pub header: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchError {
    #[serde(default)]
    pub code: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchObject {
    pub oid: String,
    pub size: u64,
    /// Absent when the hub already has the object: nothing to send.
    #[serde(default)]
    pub actions: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub error: Option<BatchError>,
}

impl BatchObject {
    pub(crate) fn action(&self, name: &str) -> Result<Option<BatchAction>> {
        match self.actions.as_ref().and_then(|a| a.get(name)) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| ClientError::Protocol(format!("LFS {name} action for {}: {e}", self.oid))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BatchAnswer {
    pub objects: Vec<BatchObject>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitOutcome {
    #[serde(rename = "commitOid")]
    pub commit_oid: String,
    #[serde(rename = "commitUrl")]
    pub commit_url: String,
}

/// A connection to one hub with one (optional) token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: &str, token: Option<String>) -> Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ClientError::Invalid(format!("endpoint {endpoint:?} must start with http:// or https://")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("commons-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // No overall timeout: a large file may take as long as it takes; stalls still fail
            // through the read timeout.
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| ClientError::Http { url: endpoint.clone(), source: e })?;
        Ok(Self { http, endpoint, token: token.filter(|t| !t.trim().is_empty()) })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => rb.header(AUTHORIZATION, format!("Bearer {t}")),
            None => rb,
        }
    }

    fn api_url(&self, repo: &RepoId, tail: &str) -> String {
        format!("{}/api/{}/{}/{}{tail}", self.endpoint, repo.kind.plural(), repo.namespace, repo.name)
    }

    /// `/{prefix}{ns}/{name}/resolve/{rev}/{path}`.
    pub fn resolve_url(&self, repo: &RepoId, revision: &str, path: &str) -> String {
        format!(
            "{}/{}{}/{}/resolve/{}/{}",
            self.endpoint,
            repo.kind.url_prefix(),
            repo.namespace,
            repo.name,
            encode_revision(revision),
            encode_path(path)
        )
    }

    /// Sends a request to the hub (with the token) and turns an error status into [`ClientError::Api`].
    pub(crate) async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        send_checked(self.authed(rb)).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T> {
        let resp = self.send(self.http.get(url)).await?;
        read_json(resp, url).await
    }

    /// Follows `Link: rel="next"` pages and concatenates them.
    async fn get_paged<T: serde::de::DeserializeOwned>(&self, first: String) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let resp = self.send(self.http.get(&url)).await?;
            next = next_link(resp.headers());
            let page: Vec<T> = read_json(resp, &url).await?;
            out.extend(page);
        }
        Ok(out)
    }

    pub async fn whoami(&self) -> Result<WhoAmI> {
        if self.token.is_none() {
            return Err(ClientError::Invalid("no token: pass --token, set HF_TOKEN, or run `commons login`".into()));
        }
        self.get_json(&format!("{}/api/whoami-v2", self.endpoint)).await
    }

    /// Creates `repo`. With `exist_ok`, an existing repository is not an error.
    pub async fn create_repo(&self, repo: &RepoId, private: bool, exist_ok: bool) -> Result<CreatedRepo> {
        let url = format!("{}/api/repos/create", self.endpoint);
        let body = json!({"name": repo.name, "organization": repo.namespace, "type": repo.kind.as_str(), "private": private});
        match self.send(self.http.post(&url).json(&body)).await {
            Ok(resp) => {
                let v: Value = read_json(resp, &url).await?;
                let url = v.get("url").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| self.web_url(repo));
                Ok(CreatedRepo { url, existed: false })
            }
            Err(ClientError::Api { status: 409, .. }) if exist_ok => Ok(CreatedRepo { url: self.web_url(repo), existed: true }),
            Err(ClientError::Api { status: 409, code, .. }) => Err(ClientError::Api {
                status: 409,
                code,
                message: format!("{} {repo} already exists (pass --exist-ok to accept it)", repo.kind),
            }),
            Err(e) => Err(e),
        }
    }

    /// The repository's page: `{endpoint}/{prefix}{ns}/{name}`.
    pub fn web_url(&self, repo: &RepoId) -> String {
        format!("{}/{}{}", self.endpoint, repo.kind.url_prefix(), repo.full_name())
    }

    pub async fn repo_info(&self, repo: &RepoId, revision: &str) -> Result<RepoInfo> {
        let url = self.api_url(repo, &format!("/revision/{}", encode_revision(revision)));
        self.get_json(&url).await
    }

    /// Every file and directory at `revision`, recursively, all pages.
    pub async fn list_tree(&self, repo: &RepoId, revision: &str) -> Result<Vec<TreeEntry>> {
        let url = self.api_url(repo, &format!("/tree/{}?recursive=true&expand=false", encode_revision(revision)));
        self.get_paged(url).await
    }

    /// The history reachable from `revision`, newest first.
    pub async fn list_commits(&self, repo: &RepoId, revision: &str) -> Result<Vec<CommitInfo>> {
        let url = self.api_url(repo, &format!("/commits/{}", encode_revision(revision)));
        self.get_paged(url).await
    }

    pub async fn create_branch(&self, repo: &RepoId, branch: &str, starting_point: Option<&str>) -> Result<()> {
        let url = self.api_url(repo, &format!("/branch/{}", encode_revision(branch)));
        let body = match starting_point {
            Some(s) => json!({"startingPoint": s}),
            None => json!({}),
        };
        self.send(self.http.post(&url).json(&body)).await?;
        Ok(())
    }

    pub(crate) async fn preupload(&self, repo: &RepoId, revision: &str, files: &[PreuploadFile]) -> Result<Vec<PreuploadAnswer>> {
        #[derive(Deserialize)]
        struct Answer {
            files: Vec<PreuploadAnswer>,
        }
        let url = self.api_url(repo, &format!("/preupload/{}", encode_revision(revision)));
        let resp = self.send(self.http.post(&url).json(&json!({"files": files}))).await?;
        Ok(read_json::<Answer>(resp, &url).await?.files)
    }

    /// Asks where to send LFS objects `(sha256, size)`; offers both basic and multipart.
    pub(crate) async fn lfs_batch(&self, repo: &RepoId, objects: &[(String, u64)]) -> Result<BatchAnswer> {
        let url = format!("{}/{}{}/{}.git/info/lfs/objects/batch", self.endpoint, repo.kind.url_prefix(), repo.namespace, repo.name);
        let body = json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": objects.iter().map(|(oid, size)| json!({"oid": oid, "size": size})).collect::<Vec<_>>(),
            "hash_algo": "sha256",
        });
        let rb = self
            .http
            .post(&url)
            .header("accept", "application/vnd.git-lfs+json")
            .header("content-type", "application/vnd.git-lfs+json")
            .body(body.to_string());
        let resp = self.send(rb).await?;
        read_json(resp, &url).await
    }

    /// Applies an NDJSON list of operations as one commit on `branch`.
    pub(crate) async fn commit(&self, repo: &RepoId, branch: &str, ndjson: Vec<u8>) -> Result<CommitOutcome> {
        let url = self.api_url(repo, &format!("/commit/{}", encode_revision(branch)));
        let rb = self.http.post(&url).header("content-type", "application/x-ndjson").body(ndjson);
        let resp = self.send(rb).await?;
        read_json(resp, &url).await
    }

    /// `GET /resolve`, from byte `start` on when resuming.
    pub(crate) async fn resolve_from(&self, repo: &RepoId, commit: &str, path: &str, start: u64) -> Result<Response> {
        let url = self.resolve_url(repo, commit, path);
        let mut rb = self.http.get(&url).header("accept-encoding", "identity");
        if start > 0 {
            rb = rb.header("range", format!("bytes={start}-"));
        }
        self.send(rb).await
    }
}

/// Sends and maps an error status to [`ClientError::Api`] with the server's own message.
pub(crate) async fn send_checked(rb: RequestBuilder) -> Result<Response> {
    let resp = rb.send().await.map_err(|e| ClientError::Http { url: e.url().map(|u| u.to_string()).unwrap_or_default(), source: e })?;
    tracing::debug!(url = %resp.url(), status = resp.status().as_u16(), "hub answered");
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(api_error(resp).await)
}

/// Decodes an error answer: Commons sends `{"error": text, "message": text, "code": code}`, the
/// Hugging Face Hub `{"error": text}`, both with `X-Error-Code` / `X-Error-Message`; a proxy may
/// send anything.
async fn api_error(resp: Response) -> ClientError {
    let status = resp.status();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let header_code = header("x-error-code");
    let header_message = header("x-error-message");
    let body = resp.text().await.unwrap_or_default();
    let json: Option<Value> = serde_json::from_str(&body).ok();
    let field = |k: &str| json.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
    let code = field("code").or(header_code);
    let message = field("message").or_else(|| field("error")).or(header_message).unwrap_or_else(|| {
        if body.trim().is_empty() || body.len() > 300 {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            body.trim().to_string()
        }
    });
    ClientError::Api { status: status.as_u16(), code, message }
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(resp: Response, url: &str) -> Result<T> {
    let bytes = resp.bytes().await.map_err(|e| ClientError::Http { url: url.to_string(), source: e })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("{url}: {e}")))
}

/// The target of `Link: <url>; rel="next"`, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// True for the status of a partial answer to a range request.
pub(crate) fn is_partial(status: StatusCode) -> bool {
    status == StatusCode::PARTIAL_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_revisions_and_paths() {
        assert_eq!(encode_revision("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_path("dir with space/a#b.txt"), "dir%20with%20space/a%23b.txt");
        let mut h = HeaderMap::new();
        h.insert(LINK, "<http://h/api/x?cursor=2>; rel=\"next\"".parse().expect("header"));
        assert_eq!(next_link(&h).as_deref(), Some("http://h/api/x?cursor=2"));
        h.insert(LINK, "<http://h/a>; rel=\"prev\"".parse().expect("header"));
        assert_eq!(next_link(&h), None);
    }
}
