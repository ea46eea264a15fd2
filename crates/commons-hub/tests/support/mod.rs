//! Test support: the hub and compute API served in the test's own process on a free loopback
//! port (a real server, real sockets, a real SQLite database and store in a fresh directory),
//! with a user and a write token. Tests that need the `commons` binary (crashes, the CLI, memory
//! of the server process, volunteer workers) live in `commons-cli`.

#![allow(dead_code)]

pub mod big_parquet;
mod common;

use std::path::PathBuf;

pub use common::*;
use commons_db::Scope;

pub struct Hub {
    pub data_dir: PathBuf,
    /// Where the hub's objects lie as files: its data directory's store, or its prefix of the test
    /// bucket (see [`test_store`]).
    pub store_dir: PathBuf,
    pub token: String,
    pub user: String,
    pub state: commons_hub::AppState,
    /// The compute coordinator the hub serves.
    pub coordinator: commons_compute::Coordinator,
    url: String,
    /// The hub's own prefix of the test bucket, removed with it (see [`test_store`]).
    bucket_prefix: Option<PathBuf>,
    runtime: Option<tokio::runtime::Runtime>,
    _tmp: tempfile::TempDir,
}

impl Hub {
    /// A fresh hub with user `alice` and a write token.
    pub fn start() -> Hub {
        Self::start_with(|state| state)
    }

    /// As [`Self::start`], with the hub's settings changed by `configure` before it serves.
    pub fn start_with(configure: impl FnOnce(commons_hub::AppState) -> commons_hub::AppState) -> Hub {
        Self::start_with_compute(configure, Default::default())
    }

    /// As [`Self::start_with`], with the compute coordinator's settings `compute`.
    pub fn start_with_compute(
        configure: impl FnOnce(commons_hub::AppState) -> commons_hub::AppState,
        compute: commons_compute::ComputeConfig,
    ) -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (store_url, store_dir, bucket_prefix) = match test_store() {
            Some((url, dir)) => (Some(url), dir.clone(), Some(dir)),
            None => (None, data_dir.join("objects"), None),
        };
        let (state, coordinator, url, token) = runtime.block_on(async {
            let database = match std::env::var("COMMONS_TEST_POSTGRES") {
                Ok(server) => Some(postgres_database(&server).await),
                Err(_) => None,
            };
            let state = configure(
                commons_hub::AppState::open_with_database(&data_dir, database.as_deref(), store_url.as_deref(), None)
                    .await
                    .expect("open the hub"),
            );
            state.db.create_user("alice", "Alice").await.expect("user");
            let token = state.db.create_token("alice", "test", Scope::Write).await.expect("token");
            let coordinator =
                commons_compute::Coordinator::start(state.db.clone(), state.repos.clone(), compute).await.expect("coordinator");
            let app = commons_hub::router_with_compute(state.clone(), coordinator.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("address"));
            tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));
            (state, coordinator, url, token)
        });
        Hub { data_dir, store_dir, bucket_prefix, token, user: "alice".into(), state, coordinator, url, runtime: Some(runtime), _tmp: tmp }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Another token of `user`, of `scope` (`read`, `write`, `worker`).
    pub fn add_token(&self, user: &str, scope: &str) -> String {
        let scope = Scope::parse(scope).expect("a scope");
        self.block_on(self.state.db.create_token(user, scope.as_str(), scope)).expect("token")
    }

    /// Runs `future` on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.as_ref().expect("the hub runs").block_on(future)
    }
}

/// A worker's registration as `commons worker` sends it: `cores` cores, 1 GiB, no GPU.
pub fn worker_registration(name: &str, cores: u32) -> commons_protocol::RegisterWorker {
    commons_protocol::RegisterWorker {
        protocol_version: commons_protocol::PROTOCOL_VERSION,
        name: name.into(),
        cores,
        memory_bytes: 1 << 30,
        gpu: None,
        engine_version: "test".into(),
        platform: "test".into(),
        numeric_class: "test".into(),
        speed_gflops: 1.0,
    }
}

/// A fresh database on the PostgreSQL server at `server` (`COMMONS_TEST_POSTGRES`, started by
/// `scripts/postgres.sh`): every hub of every test gets its own.
pub async fn postgres_database(server: &str) -> String {
    let name = unique_name("t");
    commons_db::sql::create_postgres_database(server, &name).await.expect("a database on the server of COMMONS_TEST_POSTGRES")
}

impl Served for Hub {
    fn url(&self) -> String {
        self.url.clone()
    }
    fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Hundreds of hubs a run, some with a gibibyte: the bucket must not keep them all.
        if let Some(prefix) = &self.bucket_prefix {
            let _ = std::fs::remove_dir_all(prefix);
        }
    }
}

impl Hub {
    /// A user with a write token.
    pub fn add_user(&self, name: &str) -> String {
        self.block_on(self.state.db.create_user(name, name)).expect("user");
        self.add_token(name, "write")
    }
}

/// What one request answered: its status, its `X-Error-Code`, its `Link`, its body as text and
/// as JSON (null when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub code: String,
    pub link: Option<String>,
    pub text: String,
    pub body: serde_json::Value,
}

/// `method path` on `hub` with an optional bearer token and JSON body; redirects are answers.
pub fn call(hub: &Hub, method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Answer {
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http.request(method.parse().unwrap(), format!("{}{path}", hub.url()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (code, link) = (header("x-error-code").unwrap_or_default(), header("link"));
    let text = resp.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer { status, code, link, text, body }
}
