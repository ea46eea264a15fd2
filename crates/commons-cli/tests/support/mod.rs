//! Test support: a real `commons serve` process on a free loopback port with a fresh data
//! directory, a user and a write token; and Python virtualenvs with pinned client versions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../commons-hub/tests/support/common.rs"]
mod common;
pub use common::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_commons");

pub struct Hub {
    pub data_dir: PathBuf,
    pub port: u16,
    pub token: String,
    pub user: String,
    /// Extra `commons serve` flags.
    pub serve_args: Vec<String>,
    /// Extra environment variables of the server process (e.g. an S3 store's `AWS_*`).
    pub env: Vec<(String, String)>,
    /// Where the server's stderr (its log) goes, appended; the test's own stderr when `None`.
    pub log: Option<PathBuf>,
    /// The hub's PostgreSQL database (a fresh one on `COMMONS_TEST_POSTGRES`'s server when that
    /// is set); `None`: the embedded SQLite database in `data_dir`.
    pub database_url: Option<String>,
    /// The hub's object store URL (a prefix of the test bucket when the suites run on S3, see
    /// [`test_store`]); `None`: the store in `data_dir`.
    pub store_url: Option<String>,
    /// Where the hub's objects lie as files.
    pub store_dir: PathBuf,
    /// The hub's own prefix of the test bucket, removed with it; `None` on its peers.
    bucket_prefix: Option<PathBuf>,
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
        Hub::start_with_env(data_dir, user, serve_args, Vec::new())
    }

    /// As [`Self::start_with`], the server process with extra environment variables `env`.
    pub fn start_with_env(data_dir: &Path, user: &str, serve_args: &[&str], env: Vec<(String, String)>) -> Hub {
        let (store_url, store_dir, bucket_prefix) = match test_store() {
            Some((url, dir)) => (Some(url), dir.clone(), Some(dir)),
            None => (None, data_dir.join("objects"), None),
        };
        let serve_args = serve_args.iter().map(|a| a.to_string()).collect();
        let mut hub = Hub {
            data_dir: data_dir.to_path_buf(),
            port: 0,
            token: String::new(),
            user: user.into(),
            serve_args,
            env,
            log: None,
            database_url: test_database(),
            store_url,
            store_dir,
            bucket_prefix,
            child: None,
            _tmp: None,
        };
        hub.admin(&["user", "create", user]);
        let out = hub.admin(&["token", "create", user, "--scope", "write"]);
        hub.token = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string();
        hub.restart();
        hub
    }

    /// `commons` run by this hub's administrator: on its database (its data directory, or its
    /// PostgreSQL database through `COMMONS_DATABASE_URL`). The caller checks the outcome.
    pub fn admin_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args).arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            command.env("COMMONS_DATABASE_URL", url);
        }
        if let Some(url) = &self.store_url {
            command.env("COMMONS_STORE_URL", url);
        }
        command
    }

    /// [`Self::admin_command`], run; it must succeed.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        let out = self.admin_command(args).output().expect("run commons");
        assert!(out.status.success(), "commons {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// A server on a data directory that already holds a hub (a restored backup), acting as
    /// `user` with `token`.
    pub fn serve_existing(data_dir: &Path, user: &str, token: &str) -> Hub {
        let serve_args = vec!["--no-worker".to_string()];
        let mut hub = Hub {
            data_dir: data_dir.to_path_buf(),
            port: 0,
            token: token.into(),
            user: user.into(),
            serve_args,
            env: Vec::new(),
            log: None,
            database_url: None,
            store_url: None,
            store_dir: data_dir.join("objects"),
            bucket_prefix: None,
            child: None,
            _tmp: None,
        };
        hub.restart();
        hub
    }

    /// Another server of the same hub: its own data directory `data_dir`, this hub's database
    /// and object store, `serve_args`. On PostgreSQL the servers share the URL-signing key
    /// through the database; on one SQLite file the operator copies `signing.key`, as here.
    pub fn peer(&self, data_dir: &Path, serve_args: &[&str]) -> Hub {
        std::fs::create_dir_all(data_dir).unwrap();
        if self.database_url.is_none() {
            std::fs::copy(self.data_dir.join("signing.key"), data_dir.join("signing.key")).expect("the first server's signing key");
        }
        let database_url = self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("commons.db").display()));
        let store_url = self.store_url.clone().unwrap_or_else(|| format!("file://{}", self.data_dir.join("objects").display()));
        let mut args: Vec<String> = vec!["--store-url".into(), store_url.clone()];
        args.extend(serve_args.iter().map(|a| a.to_string()));
        let mut hub = Hub {
            data_dir: data_dir.to_path_buf(),
            port: 0,
            token: self.token.clone(),
            user: self.user.clone(),
            serve_args: args,
            env: Vec::new(),
            log: None,
            database_url: Some(database_url),
            store_url: Some(store_url),
            store_dir: self.store_dir.clone(),
            bucket_prefix: None,
            child: None,
            _tmp: None,
        };
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
        self.admin(&["user", "create", name]);
        self.add_token(name, "write")
    }

    /// Another token of `user`, of `scope`.
    pub fn add_token(&self, user: &str, scope: &str) -> String {
        let out = self.admin(&["token", "create", user, "--scope", scope, "--name", scope]);
        String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string()
    }

    fn spawn(&mut self) {
        let stderr = match &self.log {
            Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log")),
            None => Stdio::inherit(),
        };
        let child = Command::new(BIN)
            .args(["serve", "--data-dir", self.data_dir.to_str().unwrap(), "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.serve_args)
            .env("RUST_LOG", "warn")
            .envs(self.database_url.iter().map(|url| ("COMMONS_DATABASE_URL", url)))
            .envs(self.store_url.iter().map(|url| ("COMMONS_STORE_URL", url)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
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

    /// `commons ARGS` as a user of this hub would run it: its address, the admin's token and
    /// `hf_home` in the environment. The caller checks the outcome.
    pub fn cli(&self, hf_home: &Path, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("HF_ENDPOINT", self.url())
            .env("HF_TOKEN", &self.token)
            .env("HF_HOME", hf_home)
            .output()
            .expect("run commons")
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh database on the PostgreSQL server of `COMMONS_TEST_POSTGRES` (started by
/// `scripts/postgres.sh`), when that is set: the hub's suites run on both engines.
fn test_database() -> Option<String> {
    let server = std::env::var("COMMONS_TEST_POSTGRES").ok()?;
    let name = unique_name("c");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    Some(
        runtime
            .block_on(commons_db::sql::create_postgres_database(&server, &name))
            .expect("a database on the server of COMMONS_TEST_POSTGRES"),
    )
}

impl Served for Hub {
    fn url(&self) -> String {
        self.url()
    }
    fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
        // Hundreds of hubs a run, some with a gibibyte: the bucket must not keep them all.
        if let Some(prefix) = &self.bucket_prefix {
            let _ = std::fs::remove_dir_all(prefix);
        }
    }
}

/// MNIST test image `index` as a grey PNG file at `path`, `scale` times its size (nearest
/// neighbour), as a person would save a digit.
pub fn mnist_png(images: &commons_data::idx::IdxImages, index: usize, scale: usize, path: &Path) {
    let (rows, cols) = (images.rows, images.cols);
    let pixels = &images.pixels[index * rows * cols..(index + 1) * rows * cols];
    let mut scaled = Vec::with_capacity(rows * cols * scale * scale);
    for y in 0..rows * scale {
        for x in 0..cols * scale {
            scaled.push(pixels[(y / scale) * cols + x / scale]);
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, (cols * scale) as u32, (rows * scale) as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(&scaled).unwrap();
}

/// `keras-mnist-mlp` trained for one epoch on one thread into `out`.
pub fn train_mnist_mlp(data: &Path, out: &Path) {
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    commons(&["train", "keras-mnist-mlp", "--data", data, "--out", out, "--set", "training.epochs=1", "--set", "training.threads=1"]);
}

const ONNX_PINS: &[(&str, &str)] = &[("onnx", "1.19.1"), ("numpy", "2.2.6")];

/// `tests/py/onnx_models.py` with the `onnx` package (PyPI); its standard output.
pub fn python_onnx(args: &[&str]) -> String {
    let python = python_venv_with(ONNX_PINS);
    let script = workspace_root().join("crates/commons-cli/tests/py/onnx_models.py");
    let out = Command::new(python).arg(script).args(args).output().expect("python");
    assert!(out.status.success(), "onnx_models.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ONNX model built with the `onnx` package, not by Commons: nearest centroid on MNIST as a
/// linear classifier ending in a Softmax, with weights worked out here from the training
/// images. Returns its directory (`model.onnx` and a `config.json` whose recipe reads MNIST)
/// under `dir`, and its test accuracy worked out here in f64.
pub fn centroid_onnx_model(dir: &Path, data: &Path) -> (PathBuf, f64) {
    let recipe = commons_recipe::recipe::load_with("keras-mnist-mlp", &[]).expect("recipe");
    let prepared = commons_engine::data::prepare(&recipe.recipe, data, None).expect("MNIST");
    let (train, test) = (prepared.split("train").expect("train"), prepared.split("test").expect("test"));
    // Nearest centroid as a linear classifier: w_c = mean image of class c, b_c = -|w_c|²/2.
    let mut sums = vec![vec![0f64; 784]; 10];
    let mut counts = [0usize; 10];
    for (i, &label) in train.targets.iter().enumerate() {
        counts[label as usize] += 1;
        for (s, &x) in sums[label as usize].iter_mut().zip(&train.features[i * 784..(i + 1) * 784]) {
            *s += x as f64;
        }
    }
    let centroids: Vec<Vec<f32>> = sums.iter().zip(counts).map(|(s, n)| s.iter().map(|v| (v / n as f64) as f32).collect()).collect();
    let mut weights = vec![0f32; 784 * 10];
    for (c, centroid) in centroids.iter().enumerate() {
        for (p, &v) in centroid.iter().enumerate() {
            weights[p * 10 + c] = v;
        }
    }
    let bias: Vec<f32> = centroids.iter().map(|c| -0.5 * c.iter().map(|v| v * v).sum::<f32>()).collect();
    // Its accuracy, worked out here in f64.
    let mut correct = 0;
    for (i, &label) in test.targets.iter().enumerate() {
        let x = &test.features[i * 784..(i + 1) * 784];
        let scores: Vec<f64> =
            (0..10).map(|c| bias[c] as f64 + (0..784).map(|p| x[p] as f64 * weights[p * 10 + c] as f64).sum::<f64>()).collect();
        let best = (0..10).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
        correct += usize::from(best == label as usize);
    }
    let expected = correct as f64 / test.count as f64;
    assert!((0.75..0.9).contains(&expected), "nearest centroid on MNIST is about 82%: {expected}");

    let model_dir = dir.join("centroid");
    std::fs::create_dir_all(&model_dir).unwrap();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("w.f32"), bytes(&weights)).unwrap();
    std::fs::write(dir.join("b.f32"), bytes(&bias)).unwrap();
    python_onnx(&[
        "centroid",
        dir.join("w.f32").to_str().unwrap(),
        dir.join("b.f32").to_str().unwrap(),
        model_dir.join("model.onnx").to_str().unwrap(),
    ]);
    // The data it reads, as a Commons model directory says: the MLP recipe's MNIST reading
    // (28×28, scaled to [0, 1]); its layers are not what runs (the graph is).
    let trained = dir.join("mlp");
    train_mnist_mlp(data, &trained);
    std::fs::copy(trained.join("config.json"), model_dir.join("config.json")).unwrap();

    (model_dir, expected)
}
