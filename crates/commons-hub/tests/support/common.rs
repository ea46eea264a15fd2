//! Helpers every hub test shares, in-process or against the binary: the workspace root, pinned
//! Python clients in virtualenvs, a raw protocol client, file listings. Included by path from
//! `commons-cli`'s test support too, so there is one copy.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Root of the workspace (two levels above the crate under test).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// A name no other test hub of any test process has: `prefix`, the process id, a counter and a
/// random number (test binaries run at once on one PostgreSQL server and one bucket).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), rand::random::<u32>())
}

/// The object store of a test hub. When the suites run a second time on PostgreSQL + S3
/// (`scripts/s3.sh start` sets `COMMONS_TEST_S3` and `COMMONS_TEST_S3_ROOT`), a fresh prefix of
/// the shared test bucket: its `s3://` URL, and the directory where `s3s-fs` keeps its objects
/// as plain files, so a test can see what is stored. `None`: the store in the hub's data directory.
pub fn test_store() -> Option<(String, PathBuf)> {
    let bucket = std::env::var("COMMONS_TEST_S3").ok()?;
    let root = std::env::var_os("COMMONS_TEST_S3_ROOT").expect("COMMONS_TEST_S3_ROOT is set beside COMMONS_TEST_S3");
    let prefix = unique_name("s");
    Some((format!("{bucket}/{prefix}"), PathBuf::from(root).join(prefix)))
}

/// A virtualenv with `package==version` installed from PyPI, created once and reused.
pub fn python_venv(package: &str, version: &str) -> PathBuf {
    python_venv_with(&[(package, version)])
}

/// A virtualenv with each `package==version` of `pins` installed from PyPI together, created
/// once and reused.
pub fn python_venv_with(pins: &[(&str, &str)]) -> PathBuf {
    // Tests of one binary run on threads: one of them builds a virtualenv while the others wait.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let name: Vec<String> = pins.iter().map(|(p, v)| format!("{}-{v}", p.replace('_', "-"))).collect();
    let dir = workspace_root().join("target").join("py").join(name.join("+"));
    let python = dir.join("bin").join("python");
    let marker = dir.join(".installed");
    if marker.exists() {
        return python;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let status = Command::new("python3").args(["-m", "venv", dir.to_str().unwrap()]).status().expect("python3 is required");
    assert!(status.success(), "creating a virtualenv failed");
    let requirements: Vec<String> = pins.iter().map(|(p, v)| format!("{p}=={v}")).collect();
    let out = Command::new(dir.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(&requirements)
        .output()
        .expect("pip");
    assert!(out.status.success(), "pip install {requirements:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&marker, b"").unwrap();
    python
}

/// Every file below `dir` (recursively) with its size, sorted by path.
pub fn files_under(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.display().to_string(), entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out.sort();
    out
}

/// `python script` against `hub_url`, with the Hugging Face client's cache in `hf_home` and its
/// telemetry, Xet transfers and progress bars off.
pub fn python_script(python: &Path, script: &str, hub_url: &str, hf_home: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .arg(workspace_root().join("crates/commons-cli/tests/py").join(script))
        .env("HF_ENDPOINT", hub_url)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    command
}

/// Asserts that a check script ran to its end (`ALL CHECKS PASSED`), showing its output if not.
pub fn assert_python_passed(out: &std::process::Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("ALL CHECKS PASSED"), "{what} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
}

/// A minimal raw-HTTP writer for tests that need to control every request (crash tests, the
/// download-only Rust client test). Speaks the same protocol as the official clients.
pub struct RawClient {
    pub base: String,
    pub token: String,
    http: reqwest::blocking::Client,
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A hub under test: a `commons serve` process or one served in the test's own process.
pub trait Served {
    fn url(&self) -> String;
    fn token(&self) -> &str;
}

impl RawClient {
    pub fn new(hub: &impl Served) -> Self {
        Self::with_token(hub, hub.token())
    }

    /// A client of `hub` acting with `token`.
    pub fn with_token(hub: &impl Served, token: &str) -> Self {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        RawClient { base: hub.url(), token: token.to_string(), http }
    }

    pub fn create_model(&self, name: &str) -> reqwest::Result<reqwest::blocking::Response> {
        self.http
            .post(format!("{}/api/repos/create", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"name": name, "type": "model"}))
            .send()
    }

    /// Uploads `data` through the LFS batch API (basic transfer); returns its sha256.
    pub fn upload_lfs(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let oid = sha256_hex(data);
        let resp = self
            .http
            .post(format!("{}/{repo}.git/info/lfs/objects/batch", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": data.len()}], "hash_algo": "sha256"}))
            .send()
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("batch: {}", resp.status()));
        }
        let v: serde_json::Value = resp.json().map_err(|e| e.to_string())?;
        if let Some(href) = v["objects"][0]["actions"]["upload"]["href"].as_str() {
            let put = self.http.put(href).body(data.to_vec()).send().map_err(|e| e.to_string())?;
            if !put.status().is_success() {
                return Err(format!("PUT: {} {}", put.status(), put.text().unwrap_or_default()));
            }
        }
        Ok(oid)
    }

    /// Sends an NDJSON commit; returns the new commit id.
    pub fn commit(&self, repo: &str, lines: &[serde_json::Value]) -> Result<String, String> {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let resp = self
            .http
            .post(format!("{}/api/models/{repo}/commit/main", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("commit: {status} {v}"));
        }
        Ok(v["commitOid"].as_str().unwrap_or_default().to_string())
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().unwrap()
    }
}

/// A real S3-compatible server for the tests that run a hub on object storage: `s3s-fs` (an
/// implementation of the S3 API over a directory, from crates.io, installed into `target/tools`
/// on first use) on a free loopback port with signed requests, and bucket [`S3Server::BUCKET`].
/// Its objects are plain files under `root/BUCKET/`, so a test can see what the bucket holds.
pub struct S3Server {
    pub root: PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
    _tmp: tempfile::TempDir,
}

impl S3Server {
    pub const BUCKET: &'static str = "commons";
    const ACCESS_KEY: &'static str = "commons-test";
    const SECRET_KEY: &'static str = "commons-test-secret";

    pub fn start() -> S3Server {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("s3");
        std::fs::create_dir_all(root.join(Self::BUCKET)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = S3Server { root, port, child: None, _tmp: tmp };
        server.restart();
        server
    }

    /// The variables a `commons` process reads for `s3://` store URLs: the AWS SDKs' names.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Every object under `prefix` in the bucket, with its size, sorted by key.
    pub fn objects(&self, prefix: &str) -> Vec<(String, u64)> {
        let bucket = self.root.join(Self::BUCKET);
        files_under(&bucket.join(prefix))
            .into_iter()
            .map(|(path, size)| (path.strip_prefix(&format!("{}/", bucket.display())).unwrap_or(&path).to_string(), size))
            .collect()
    }

    /// SIGKILL, as an object store that went away.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on its port and directory.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", Self::ACCESS_KEY, "--secret-key", Self::SECRET_KEY])
            .arg(&self.root)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "s3s-fs did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `s3s-fs` binary, installed by `scripts/s3.sh install` into `target/tools` the first time
/// (the script holds the version).
fn s3s_fs() -> PathBuf {
    let out = Command::new(workspace_root().join("scripts").join("s3.sh")).arg("install").output().expect("run scripts/s3.sh");
    assert!(out.status.success(), "installing s3s-fs failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
