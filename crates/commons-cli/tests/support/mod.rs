//! Test support: a real `commons serve` process on a free loopback port with a fresh data
//! directory, a user and a write token; and Python virtualenvs with pinned client versions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_commons");

pub struct Hub {
    pub data_dir: PathBuf,
    pub port: u16,
    pub token: String,
    pub user: String,
    /// Extra `commons serve` flags.
    pub serve_args: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn commons(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("run commons");
    assert!(out.status.success(), "commons {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

impl Hub {
    /// A fresh hub with user `alice` and a write token.
    pub fn start() -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut hub = Hub::start_in(&data_dir, "alice");
        hub._tmp = Some(tmp);
        hub
    }

    pub fn start_in(data_dir: &Path, user: &str) -> Hub {
        Hub::start_with(data_dir, user, &["--no-worker"])
    }

    /// A hub with user `user` whose server runs with `serve_args` (the other tests pass
    /// `--no-worker`: the hub alone).
    pub fn start_with(data_dir: &Path, user: &str, serve_args: &[&str]) -> Hub {
        let dd = data_dir.to_str().unwrap();
        commons(&["user", "create", user, "--data-dir", dd]);
        let out = commons(&["token", "create", user, "--scope", "write", "--data-dir", dd]);
        let token = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string();
        let serve_args = serve_args.iter().map(|a| a.to_string()).collect();
        let mut hub = Hub { data_dir: data_dir.to_path_buf(), port: 0, token, user: user.into(), serve_args, child: None, _tmp: None };
        hub.restart();
        hub
    }

    /// (Re)starts the server process on the same data directory, on a fresh port.
    pub fn restart(&mut self) {
        self.port = free_port();
        self.spawn();
    }

    /// Restarts the server on the port it had, as an operator restarting a hub would: clients
    /// and workers pointed at it carry on.
    pub fn restart_on_same_port(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A user with a write token (created through the CLI, as an administrator would).
    pub fn add_user(&self, name: &str) -> String {
        commons(&["user", "create", name, "--data-dir", self.data_dir.to_str().unwrap()]);
        self.add_token(name, "write")
    }

    /// Another token of `user`, of `scope`.
    pub fn add_token(&self, user: &str, scope: &str) -> String {
        let out = commons(&["token", "create", user, "--scope", scope, "--name", scope, "--data-dir", self.data_dir.to_str().unwrap()]);
        assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string()
    }

    fn spawn(&mut self) {
        let child = Command::new(BIN)
            .args(["serve", "--data-dir", self.data_dir.to_str().unwrap(), "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.serve_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn commons serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("commons serve did not start listening on port {}", self.port);
    }

    /// The server process's id (to read its memory use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Root of the workspace (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// A virtualenv with `package==version` installed from PyPI, created once and reused.
pub fn python_venv(package: &str, version: &str) -> PathBuf {
    let dir = workspace_root().join("target").join("py").join(format!("{}-{version}", package.replace('_', "-")));
    let python = dir.join("bin").join("python");
    let marker = dir.join(".installed");
    if marker.exists() {
        return python;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let status = Command::new("python3").args(["-m", "venv", dir.to_str().unwrap()]).status().expect("python3 is required");
    assert!(status.success(), "creating a virtualenv failed");
    let out = Command::new(dir.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", &format!("{package}=={version}")])
        .output()
        .expect("pip");
    assert!(out.status.success(), "pip install {package}=={version} failed: {}", String::from_utf8_lossy(&out.stderr));
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

impl RawClient {
    pub fn new(hub: &Hub) -> Self {
        Self::with_token(hub, &hub.token)
    }

    /// A client of `hub` acting with `token`.
    pub fn with_token(hub: &Hub, token: &str) -> Self {
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
