//! The compute network end to end, as people run it: a `commons serve` process, volunteers
//! running `commons worker` processes under their own accounts, jobs submitted with
//! `commons job submit`, the real MNIST data set published as a dataset repo and the Keras MLP
//! recipe as an algorithm repo. After every test the credit ledger is audited from its public
//! dump: entries sum to zero, no balance below zero, every payment traces to a validated result.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, Hub, centroid_onnx_model, commons};

/// Seconds a worker may stay silent before its unit moves on (short, so tests see it happen).
const LEASE_SECONDS: &str = "3";

fn mnist_dir() -> PathBuf {
    let out = commons(&["data", "fetch", "mnist"]);
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim())
}

/// A hub with the compute network, user `alice` (the submitter), the Keras MLP as algorithm repo
/// `alice/keras-mnist-mlp` and MNIST as dataset repo `alice/mnist` (with the split sizes in its
/// card, as on the Hugging Face Hub).
struct Network {
    hub: Hub,
    tmp: tempfile::TempDir,
    http: reqwest::blocking::Client,
    workers: Vec<(String, Child)>,
}

impl Network {
    fn start(extra_serve_args: &[&str]) -> Network {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--lease-seconds", LEASE_SECONDS];
        args.extend_from_slice(extra_serve_args);
        let hub = Hub::start_with(&tmp.path().join("data"), "alice", &args);
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let network = Network { hub, tmp, http, workers: Vec::new() };
        let algorithm = network.tmp.path().join("algorithm");
        std::fs::create_dir_all(&algorithm).unwrap();
        std::fs::copy(support::workspace_root().join("crates/commons-recipe/recipes/keras-mnist-mlp.toml"), algorithm.join("recipe.toml"))
            .unwrap();
        std::fs::write(algorithm.join("README.md"), "---\nlicense: apache-2.0\ntags: [recipe]\n---\n# Keras MNIST MLP\n").unwrap();
        network.cli(&["repo", "create", "keras-mnist-mlp", "--type", "algorithm"]);
        network.cli(&["upload", "keras-mnist-mlp", algorithm.to_str().unwrap(), "--type", "algorithm"]);
        network.publish_mnist(
            "mnist",
            "---\nlicense: cc-by-sa-3.0\ndataset_info:\n  splits:\n  - name: train\n    num_examples: 60000\n  - name: test\n    num_examples: 10000\n---\n# MNIST\n",
        );
        network
    }

    /// Publishes the MNIST files as alice's dataset repo `name`, with `card` as its README.
    fn publish_mnist(&self, name: &str, card: &str) {
        let dataset = self.tmp.path().join(name);
        std::fs::create_dir_all(&dataset).unwrap();
        for entry in std::fs::read_dir(mnist_dir()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dataset.join(entry.file_name())).unwrap();
        }
        std::fs::write(dataset.join("README.md"), card).unwrap();
        self.cli(&["repo", "create", name, "--type", "dataset"]);
        self.cli(&["upload", name, dataset.to_str().unwrap(), "--type", "dataset"]);
    }

    /// Runs the CLI as alice against this hub; asserts success and returns stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_raw(args, &self.hub.token);
        assert!(out.status.success(), "commons {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn cli_raw(&self, args: &[&str], token: &str) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("HF_ENDPOINT", self.hub.url())
            .env("HF_TOKEN", token)
            .env("HF_HOME", self.tmp.path().join("alice-hf"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Starts `commons worker` for a new account `owner`, with its own cache, on a worker token
    /// (as a volunteer should); returns the account's write token.
    fn start_worker(&mut self, owner: &str, name: &str) -> String {
        let token = self.hub.add_user(owner);
        let worker_token = self.hub.add_token(owner, "worker");
        self.spawn_worker(owner, name, &worker_token);
        token
    }

    fn spawn_worker(&mut self, owner: &str, name: &str, token: &str) {
        let url = self.hub.url();
        self.spawn_worker_on(&url, owner, name, token);
    }

    /// [`Self::spawn_worker`] talking to the server at `url`.
    fn spawn_worker_on(&mut self, url: &str, owner: &str, name: &str, token: &str) {
        let home = self.tmp.path().join(format!("worker-{name}"));
        let log = std::fs::File::create(self.tmp.path().join(format!("worker-{name}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(["worker", "--hub", url, "--token", token, "--name", name, "--cores", "1"])
            .env("HF_HOME", home.join("hf"))
            .env("COMMONS_CACHE", home.join("cache"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        eprintln!("worker {name} of {owner} started");
        self.workers.push((name.to_string(), child));
    }

    /// SIGKILL a worker process: no goodbye, as when a volunteer's machine dies.
    fn kill_worker(&mut self, name: &str) {
        let index = self.workers.iter().position(|(n, _)| n == name).expect("worker exists");
        let (_, mut child) = self.workers.remove(index);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn api(&self, path: &str) -> Value {
        let resp = self.http.get(format!("{}{path}", self.hub.url())).bearer_auth(&self.hub.token).send().unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().unwrap()
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::blocking::Response {
        self.http.post(format!("{}{path}", self.hub.url())).bearer_auth(token).json(body).send().unwrap()
    }

    /// A worker speaking the protocol directly (a test's own, possibly dishonest, client) that
    /// claims whatever hardware it likes; returns its id.
    fn register_raw_worker(&self, token: &str, name: &str) -> i64 {
        self.register_raw_worker_with(token, name, Some("H100"))
    }

    /// [`Self::register_raw_worker`] offering `gpu` (or none).
    fn register_raw_worker_with(&self, token: &str, name: &str, gpu: Option<&str>) -> i64 {
        let registered = self.post(
            "/api/workers/register",
            token,
            &json!({"protocol_version": 1, "name": name, "cores": 64, "memory_bytes": 1u64 << 40, "gpu": gpu, "engine_version": "0.1.0",
                    "platform": "linux-x86_64", "numeric_class": commons_engine::numeric_class(), "speed_gflops": 1e6}),
        );
        assert!(registered.status().is_success(), "registering {name}");
        registered.json::<Value>().unwrap()["worker_id"].as_i64().unwrap()
    }

    /// A one-epoch Keras MLP trained locally and published as `alice/mlp`; returns its
    /// directory, the MNIST data and its honest test metrics.
    fn publish_local_model(&self) -> (PathBuf, PathBuf, Value) {
        let (model_dir, data) = self.train_locally("model", &[]);
        self.cli(&["repo", "create", "mlp"]);
        self.cli(&["upload", "mlp", model_dir.to_str().unwrap()]);
        let honest = honest_metrics(&model_dir, &data);
        (model_dir, data, honest)
    }

    /// A one-epoch Keras MLP trained on this machine into `dir` (with extra `--set` values), as
    /// a volunteer could before taking a unit; returns its directory and the MNIST data.
    fn train_locally(&self, dir: &str, sets: &[&str]) -> (PathBuf, PathBuf) {
        let model_dir = self.tmp.path().join(dir);
        let data = mnist_dir();
        let mut args = vec!["train", "keras-mnist-mlp", "--data", data.to_str().unwrap(), "--out", model_dir.to_str().unwrap()];
        for set in ["training.epochs=1"].iter().chain(sets) {
            args.extend(["--set", set]);
        }
        commons(&args);
        (model_dir, data)
    }

    fn job(&self, id: i64) -> Value {
        self.api(&format!("/api/jobs/{id}"))
    }

    fn submit_train(&self, epochs: u32) -> i64 {
        self.submit_train_with(epochs, &[])
    }

    /// [`Self::submit_train`] with more options of `commons job submit train`.
    fn submit_train_with(&self, epochs: u32, options: &[&str]) -> i64 {
        let epochs = format!("training.epochs={epochs}");
        let mut args = vec!["job", "submit", "train", "--algorithm", "alice/keras-mnist-mlp", "--dataset", "alice/mnist", "--set", &epochs];
        args.extend(options);
        let out = self.cli(&args);
        out.lines().last().unwrap().trim().parse().unwrap()
    }

    /// Waits until `condition` holds for the job (polling the API), or panics with the job and
    /// the worker logs.
    fn wait_job(&self, id: i64, what: &str, timeout: Duration, condition: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id);
            if condition(&job) {
                return job;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("job {id}: timed out waiting for {what}: {job:#}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_done(&self, id: i64) -> Value {
        let job = self.wait_job(id, "the job to finish", Duration::from_secs(300), |j| {
            matches!(j["state"].as_str(), Some("done" | "failed" | "cancelled"))
        });
        if job["state"] != "done" {
            self.dump_logs();
        }
        assert_eq!(job["state"], "done", "job {id} did not succeed: {job:#}");
        job
    }

    fn dump_logs(&self) {
        for (name, _) in &self.workers {
            let log = std::fs::read_to_string(self.tmp.path().join(format!("worker-{name}.log"))).unwrap_or_default();
            eprintln!(
                "---- worker {name} ----\n{}",
                log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    fn balance(&self, token: &str) -> i64 {
        let resp = self.http.get(format!("{}/api/credits", self.hub.url())).bearer_auth(token).send().unwrap();
        resp.json::<Value>().unwrap()["balance"].as_i64().unwrap()
    }

    fn worker_view(&self, name: &str) -> Value {
        self.api("/api/workers")
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("worker {name} is not listed"))
    }

    /// A read token of the hub's operator (`commons`), made as an administrator would: the whole
    /// ledger is theirs to audit.
    fn operator_token(&self) -> String {
        self.hub.add_token("commons", "read")
    }

    /// The ledger's invariants, checked from the operator's dump and the jobs' own records.
    /// The whole ledger, as the operator reads it.
    fn ledger(&self) -> Value {
        let resp = self.http.get(format!("{}/api/ledger", self.hub.url())).bearer_auth(self.operator_token()).send().unwrap();
        assert!(resp.status().is_success(), "the operator reads the ledger: {}", resp.status());
        resp.json().unwrap()
    }

    fn audit_ledger(&self) {
        let ledger = self.ledger();
        let mut balances: HashMap<i64, i64> = HashMap::new();
        let mut paid_assignments: HashMap<i64, usize> = HashMap::new();
        let mut total = 0i64;
        for transfer in ledger["transfers"].as_array().unwrap() {
            let entries = transfer["entries"].as_array().unwrap();
            assert_eq!(entries.len(), 2, "a transfer is two entries: {transfer}");
            let sum: i64 = entries.iter().map(|e| e[1].as_i64().unwrap()).sum();
            assert_eq!(sum, 0, "transfer entries must sum to zero: {transfer}");
            for e in entries {
                *balances.entry(e[0].as_i64().unwrap()).or_default() += e[1].as_i64().unwrap();
                total += e[1].as_i64().unwrap();
            }
            if transfer["kind"] == "payment" {
                let assignment = transfer["assignment_id"].as_i64().expect("a payment names its assignment");
                let unit = transfer["unit_id"].as_i64().expect("a payment names its unit");
                let job = self.job(transfer["job_id"].as_i64().expect("a payment names its job"));
                let found = job["units"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|u| u["assignments"].as_array().unwrap().iter().map(move |a| (u, a)))
                    .find(|(_, a)| a["id"] == assignment);
                let (paid_unit, paid) = found.unwrap_or_else(|| panic!("payment {transfer} names an assignment its job does not have"));
                assert_eq!(paid["outcome"], "valid", "only validated results earn credits: {transfer} for {paid}");
                assert_eq!(paid_unit["id"], unit, "a payment names the unit of the result it pays: {transfer}");
                *paid_assignments.entry(assignment).or_default() += 1;
            }
        }
        assert_eq!(total, 0, "the ledger's entries sum to zero");
        for account in ledger["accounts"].as_array().unwrap() {
            let balance = account["balance"].as_i64().unwrap();
            assert_eq!(
                balance,
                balances.get(&account["id"].as_i64().unwrap()).copied().unwrap_or(0),
                "account balance matches its entries: {account}"
            );
            if account["kind"] != "issuer" {
                assert!(balance >= 0, "no balance below zero: {account}");
            }
            if account["kind"] == "escrow" {
                let job = self.job(account["job_id"].as_i64().unwrap());
                if matches!(job["state"].as_str(), Some("done" | "failed" | "cancelled")) {
                    assert_eq!(balance, 0, "a finished job's escrow is settled: {account}");
                }
            }
        }
        for (assignment, times) in paid_assignments {
            assert_eq!(times, 1, "assignment {assignment} was paid {times} times");
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn units_of<'a>(job: &'a Value, role: &str, validation: bool) -> Vec<&'a Value> {
    job["units"].as_array().unwrap().iter().filter(|u| u["role"] == role && u["validates_unit"].is_null() != validation).collect()
}

fn assignments(unit: &Value) -> Vec<&Value> {
    unit["assignments"].as_array().unwrap().iter().collect()
}

fn running_train_assignment(job: &Value) -> Option<Value> {
    units_of(job, "train", false).into_iter().flat_map(assignments).find(|a| a["state"] == "running" && a["progress"].is_object()).cloned()
}

#[test]
fn a_train_job_runs_on_volunteers_and_another_worker_confirms_its_accuracy() {
    let mut net = Network::start(&["--no-worker"]);
    let tokens: Vec<String> =
        ["bob", "carol", "dave"].iter().enumerate().map(|(i, owner)| net.start_worker(owner, &format!("w{}", i + 1))).collect();
    let algorithm_rev = net.api("/api/algorithms/alice/keras-mnist-mlp")["sha"].as_str().unwrap().to_string();
    let dataset_rev = net.api("/api/datasets/alice/mnist")["sha"].as_str().unwrap().to_string();

    let id = net.submit_train(1);
    // `commons job watch` follows it to the end and succeeds only if the job does.
    let watch = net.cli_raw(&["job", "watch", &id.to_string()], &net.hub.token);
    assert!(watch.status.success(), "job watch failed: {}", String::from_utf8_lossy(&watch.stderr));
    let job = net.wait_done(id);

    let train = units_of(&job, "train", false);
    let validation = units_of(&job, "eval", true);
    assert_eq!(train.len(), 1);
    assert_eq!(validation.len(), 1, "one validation evaluation: {job:#}");
    let trainer = assignments(train[0]).into_iter().find(|a| a["outcome"] == "valid").expect("an accepted training result");
    let validator = assignments(validation[0]).into_iter().find(|a| a["outcome"] == "valid").expect("an accepted evaluation");
    assert_ne!(trainer["worker"], validator["worker"], "the evaluation ran on a different worker");
    assert_ne!(trainer["owner"], validator["owner"], "the evaluation ran on another volunteer's machine");
    assert!(!trainer["epochs"].as_array().unwrap().is_empty(), "per-epoch metrics came through the API: {trainer}");

    // The claimed test metrics, the independent evaluation and the job result agree exactly.
    let claimed = &trainer["output"]["test"];
    assert_eq!(claimed, &validator["output"]["metrics"], "the evaluation reproduced the claimed metrics bit for bit");
    assert_eq!(&job["result"]["test"], claimed);
    let accuracy = claimed["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "one epoch of the Keras MLP reaches over 90% on MNIST, got {accuracy}");

    // A new model repo whose card names the algorithm and dataset revisions and the validation.
    let model = job["result"]["model"]["repo"].as_str().unwrap();
    assert_eq!(model, "alice/keras-mnist-mlp-mnist");
    let card = net.http.get(format!("{}/{model}/resolve/main/README.md", net.hub.url())).send().unwrap().text().unwrap();
    assert!(card.contains(&format!("algorithm_revision: {algorithm_rev}")), "card names the algorithm revision:\n{card}");
    assert!(card.contains(&format!("dataset_revision: {dataset_rev}")), "card names the dataset revision:\n{card}");
    assert!(card.contains("- alice/mnist"), "card lists the dataset repo:\n{card}");
    assert!(
        card.contains("## Validation") && card.contains(validator["worker"].as_str().unwrap()),
        "card records who confirmed it:\n{card}"
    );
    assert!(card.contains("- Verification: reproduced bit for bit by 2 workers of 2 distinct owners"), "{card}");
    assert!(card.contains("model-index:") && card.contains("verified: true"), "the card's model-index:\n{card}");
    let info = net.api(&format!("/api/models/{model}"));
    assert_eq!(info["sha"], job["result"]["model"]["revision"], "main is the validated revision");
    let weights = net.http.head(format!("{}/{model}/resolve/main/model.safetensors", net.hub.url())).send().unwrap();
    assert!(weights.status().is_success(), "the weights are on main");

    // Credits: the trainer's owner earned the training, the validator's owner the evaluation.
    let train_credits = train[0]["credits"].as_i64().unwrap();
    let eval_credits = validation[0]["credits"].as_i64().unwrap();
    assert!(train_credits > eval_credits && eval_credits > 0, "priced by FLOPs: train {train_credits}, eval {eval_credits}");
    let owners = ["bob", "carol", "dave"];
    let balance_of = |owner: &str| net.balance(&tokens[owners.iter().position(|o| *o == owner).unwrap()]);
    assert_eq!(balance_of(trainer["owner"].as_str().unwrap()), 1000 + train_credits);
    assert_eq!(balance_of(validator["owner"].as_str().unwrap()), 1000 + eval_credits);
    assert_eq!(job["paid"].as_i64().unwrap(), train_credits + eval_credits);
    assert_eq!(job["escrow"].as_i64().unwrap(), job["paid"].as_i64().unwrap() + job["refunded"].as_i64().unwrap());
    assert_eq!(net.balance(&net.hub.token), 1000 - train_credits - eval_credits, "alice paid exactly the validated work");

    // What people see: workers online with their trust, credits history.
    let workers = net.cli(&["workers"]);
    for name in ["w1", "w2", "w3"] {
        assert!(workers.contains(name), "`commons workers` lists {name}:\n{workers}");
    }
    let credits = net.cli(&["credits"]);
    assert!(credits.contains("escrow") && credits.contains("refund"), "`commons credits` shows the history:\n{credits}");
    let logs = net.cli(&["job", "logs", &id.to_string()]);
    assert!(logs.contains("confirmed by an independent evaluation"), "job logs:\n{logs}");
    net.audit_ledger();
}

#[test]
fn a_killed_worker_and_a_restarted_server_lose_no_unit_and_pay_no_one_twice() {
    let mut net = Network::start(&["--no-worker"]);
    let bob = net.start_worker("bob", "doomed");
    let id = net.submit_train(4);
    // Killed once its first epoch checkpoint is on the hub.
    let job = net.wait_job(id, "the first worker's first checkpoint", Duration::from_secs(120), |j| {
        running_train_assignment(j).is_some() && units_of(j, "train", false)[0]["checkpoint"]["epochs_done"].as_u64() >= Some(1)
    });
    let first = running_train_assignment(&job).unwrap();
    assert_eq!(first["worker"], "doomed");
    net.kill_worker("doomed");

    net.start_worker("carol", "w2");
    net.start_worker("dave", "w3");
    let job = net.wait_job(id, "another worker to take the unit over", Duration::from_secs(120), |j| {
        running_train_assignment(j).is_some_and(|a| a["worker"] != "doomed")
    });
    let second = running_train_assignment(&job).unwrap();
    let lapsed =
        units_of(&job, "train", false)[0]["assignments"].as_array().unwrap().iter().find(|a| a["id"] == first["id"]).unwrap().clone();
    assert_eq!(lapsed["state"], "expired", "the silent worker's lease lapsed: {lapsed}");

    // Restart the server while the second worker trains: it keeps going and reports afterwards.
    net.hub.restart_on_same_port();
    let job = net.wait_done(id);
    let train = units_of(&job, "train", false)[0];
    let accepted: Vec<_> = assignments(train).into_iter().filter(|a| a["outcome"] == "valid").collect();
    assert_eq!(accepted.len(), 1, "exactly one training result accepted: {train:#}");
    assert_eq!(accepted[0]["id"], second["id"], "the worker that took over finished the unit");
    let resumed_epochs: Vec<u64> = accepted[0]["epochs"].as_array().unwrap().iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert!(
        !resumed_epochs.is_empty() && resumed_epochs.iter().all(|&e| e >= 2),
        "resumed from the checkpoint, not from scratch: {resumed_epochs:?}"
    );
    assert_eq!(job["result"]["epochs"], 4, "the model has all its epochs");
    let logs = net.cli(&["job", "logs", &id.to_string()]);
    assert!(logs.contains("resuming from the checkpoint"), "{logs}");
    let files = net.api("/api/models/alice/keras-mnist-mlp-mnist/tree/main?recursive=true");
    assert!(!files.to_string().contains("checkpoint/"), "the published model carries no checkpoint: {files}");
    // The killed worker's branch held its checkpoint; once the job is done it is pruned.
    let branches: Vec<String> = net.api("/api/models/alice/keras-mnist-mlp-mnist/refs")["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!branches.contains(&format!("job-{id}-a{}", first["id"])), "{branches:?}");
    assert!(branches.contains(&format!("job-{id}-a{}", second["id"])), "the validated model's branch stays: {branches:?}");
    assert_eq!(train["errors"], 1, "the lapsed lease counts as the unit's one error");
    assert!(train["last_error"].as_str().unwrap().contains("went silent"));
    assert_eq!(net.balance(&bob), 1000, "the killed worker's owner earned nothing");
    assert_eq!(units_of(&job, "eval", true).len(), 1, "one validation");
    net.audit_ledger();
}

/// Three servers of one hub (one database: PostgreSQL in the PostgreSQL pass, the first
/// server's SQLite file otherwise; one object store: a bucket on the PostgreSQL + S3 run), a
/// volunteer on each. The server the trainer talks to is SIGKILLed mid-job and mid-upload: the
/// job completes on the others from the checkpoint, one training result is accepted, the ledger
/// balances, every acknowledged commit is intact and the upload lands through another server.
/// What one server stored another serves, to the official client too.
#[test]
fn three_servers_share_one_hub_and_a_job_survives_the_death_of_one() {
    let mut net = Network::start(&["--no-worker"]);
    let serve = ["--no-worker", "--lease-seconds", LEASE_SECONDS];
    let mut b = net.hub.peer(&net.tmp.path().join("server-b"), &serve);
    let c = net.hub.peer(&net.tmp.path().join("server-c"), &serve);

    // Uploaded through the first server (at `Network::start`), read through the third: the
    // bytes, by the redirect the third signs.
    let mnist = mnist_dir();
    let name = "t10k-labels-idx1-ubyte";
    let local = std::fs::read(mnist.join(name)).unwrap();
    let served = net.http.get(format!("{}/datasets/alice/mnist/resolve/main/{name}", c.url())).bearer_auth(&net.hub.token).send().unwrap();
    assert!(served.status().is_success(), "{}", served.status());
    assert!(served.bytes().unwrap().as_ref() == local.as_slice(), "the third server serves what the first stored");
    // A URL one server signs is good on another: an LFS upload URL handed out by the second
    // server, sent to the third; the object then lands in a commit made through the first.
    let data = b"bytes uploaded through the third server on the second one's word".repeat(100);
    let oid = support::sha256_hex(&data);
    net.cli(&["repo", "create", "shared"]);
    let batch: Value = net
        .http
        .post(format!("{}/alice/shared.git/info/lfs/objects/batch", b.url()))
        .bearer_auth(&net.hub.token)
        .json(&json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": data.len()}], "hash_algo": "sha256"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let href = batch["objects"][0]["actions"]["upload"]["href"].as_str().expect("an upload URL").replace(&b.url(), &c.url());
    let put = net.http.put(&href).body(data.clone()).send().unwrap();
    assert!(put.status().is_success(), "the third server takes the second's signed URL: {}", put.status());
    let commit = support::RawClient::new(&net.hub).commit(
        "alice/shared",
        &[
            json!({"key": "header", "value": {"summary": "through three servers"}}),
            json!({"key": "lfsFile", "value": {"path": "blob.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
        ],
    );
    assert!(commit.is_ok(), "{commit:?}");
    let back = net.http.get(format!("{}/alice/shared/resolve/main/blob.bin", b.url())).bearer_auth(&net.hub.token).send().unwrap();
    assert!(back.bytes().unwrap().as_ref() == data.as_slice());

    // huggingface_hub as installed by default (Xet transfers) uploads through the first server
    // and downloads through the third.
    let python = support::python_venv("huggingface_hub", "2.4.0");
    let hf_home = tempfile::tempdir().unwrap();
    let token = net.hub.token.clone();
    let hf = |url: &str, args: &[&str]| {
        let mut command = support::python_script(&python, "hf_servers.py", url, hf_home.path());
        command.env_remove("HF_HUB_DISABLE_XET").env("HF_TOKEN", &token).args(args);
        command
    };
    let small = ["alice/weights", "small.bin", "1", "5000000"];
    let through = |url: &str, mode: &str, file: [&str; 4], what: &str| {
        support::assert_python_passed(&hf(url, &[&[mode][..], &file[..]].concat()).output().unwrap(), what);
    };
    through(&net.hub.url(), "upload", small, "an upload through the first server");
    through(&c.url(), "download", small, "a download through the third server");

    // A 200 MB upload through the second server is caught mid-transfer: once 32 MB of its xorbs
    // are in the store, its client is frozen (SIGSTOP) with the rest unsent.
    let big = ["alice/weights", "big.bin", "2", "200000000"];
    let store = net.hub.store_dir.join("xorbs");
    let xorb_bytes = || support::files_under(&store).iter().map(|(_, size)| size).sum::<u64>();
    let mut upload = hf(&b.url(), &[&["upload"][..], &big[..]].concat()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut began = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(upload.stdout.as_mut().unwrap()), &mut began).unwrap();
    assert_eq!(began.trim(), "UPLOADING", "the upload through the second server began");
    let before = xorb_bytes();
    let deadline = Instant::now() + Duration::from_secs(120);
    while xorb_bytes() < before + 32_000_000 {
        assert!(upload.try_wait().unwrap().is_none(), "the upload through the second server ended before it stored 32 MB");
        assert!(Instant::now() < deadline, "the upload through the second server stored less than 32 MB in 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = upload.id().to_string();
    let signal = |name: &str| assert!(Command::new("kill").args([name, &pid]).status().unwrap().success());
    signal("-STOP");

    let bob = net.hub.add_user("bob");
    let bob_worker = net.hub.add_token("bob", "worker");
    net.spawn_worker_on(&b.url(), "bob", "on-b", &bob_worker);
    let id = net.submit_train(4);
    let job = net.wait_job(id, "the trainer's first checkpoint", Duration::from_secs(120), |j| {
        running_train_assignment(j).is_some() && units_of(j, "train", false)[0]["checkpoint"]["epochs_done"].as_u64() >= Some(1)
    });
    let first = running_train_assignment(&job).unwrap();
    assert_eq!(first["worker"], "on-b");
    // The server the trainer talks to dies mid-job and mid-upload; its worker carries on
    // training, unheard, and the upload's client wakes up to a dead server.
    b.kill();
    signal("-CONT");
    for (owner, name, url) in [("carol", "on-c", c.url()), ("dave", "on-a", net.hub.url())] {
        net.hub.add_user(owner);
        let token = net.hub.add_token(owner, "worker");
        net.spawn_worker_on(&url, owner, name, &token);
    }
    // The interrupted upload was never acknowledged (its client, retrying against a dead
    // server with backoff, is stopped after a while); every acknowledged commit is intact through
    // the living servers, and the upload done again through another server lands.
    let deadline = Instant::now() + Duration::from_secs(5);
    while upload.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = upload.kill();
    let interrupted = upload.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&interrupted.stdout).contains("ALL CHECKS PASSED"),
        "an upload through a server killed mid-transfer cannot have been acknowledged"
    );
    let files: Value =
        net.http.get(format!("{}/api/models/alice/weights", c.url())).bearer_auth(&net.hub.token).send().unwrap().json().unwrap();
    let names: Vec<&str> = files["siblings"].as_array().unwrap().iter().filter_map(|f| f["rfilename"].as_str()).collect();
    assert!(names.contains(&"small.bin") && !names.contains(&"big.bin"), "the acknowledged commit, and only it: {names:?}");
    through(&net.hub.url(), "download", small, "the acknowledged file after the kill, through the first server");
    through(&c.url(), "upload", big, "the interrupted upload again, through the third server");
    through(&net.hub.url(), "download", big, "the file uploaded through the third server, through the first");

    let job = net.wait_done(id);
    let train = units_of(&job, "train", false)[0];
    let accepted: Vec<_> = assignments(train).into_iter().filter(|a| a["outcome"] == "valid").collect();
    assert_eq!(accepted.len(), 1, "exactly one training result accepted: {train:#}");
    assert_ne!(accepted[0]["worker"], "on-b", "a worker of a living server finished the unit");
    let lapsed = assignments(train).into_iter().find(|a| a["id"] == first["id"]).unwrap();
    assert_eq!(lapsed["state"], "expired", "the lease given by the dead server lapsed on the others: {lapsed}");
    assert_eq!(job["result"]["epochs"], 4);
    let validations = units_of(&job, "eval", true);
    assert_eq!(validations.len(), 1, "one validation");
    assert_eq!(net.balance(&bob), 1000, "the worker of the dead server's unit earned nothing");
    // The job's view is the same through every living server.
    let through_c: Value = net.http.get(format!("{}/api/jobs/{id}", c.url())).bearer_auth(&net.hub.token).send().unwrap().json().unwrap();
    assert_eq!(through_c["state"], "done");
    assert_eq!(through_c["result"], job["result"]);
    net.audit_ledger();
}

/// What an honest evaluation of `model_dir` reports: `commons eval`, the same deterministic code
/// every worker runs.
fn honest_metrics(model_dir: &Path, data: &Path) -> Value {
    let out = commons(&["eval", model_dir.to_str().unwrap(), "--data", data.to_str().unwrap(), "--split", "test"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fabricated_results_are_rejected_earn_nothing_and_cost_the_cheat_its_trust() {
    let mut net = Network::start(&["--no-worker"]);
    // A model to evaluate: trained locally and published by alice.
    let (_, _, honest) = net.publish_local_model();

    // Mallory speaks the worker protocol directly.
    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "fake");
    let pull = |net: &Network| -> Value {
        let resp = net.post(&format!("/api/workers/{worker_id}/pull?wait=10"), &mallory, &json!({}));
        assert_eq!(resp.status(), 200, "mallory gets a lease");
        resp.json().unwrap()
    };
    let submit_eval = |net: &Network| -> i64 {
        net.cli(&["job", "submit", "eval", "--model", "alice/mlp", "--dataset", "alice/mnist"])
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };

    // First she earns some trust with an honest result.
    let first = submit_eval(&net);
    let lease = pull(&net);
    let report = |net: &Network, lease: &Value, metrics: &Value| {
        net.post(
            &format!("/api/assignments/{}/report", lease["assignment_id"]),
            &mallory,
            &json!({"status": "success", "output": {"role": "eval", "metrics": metrics, "flops": 1e15}}),
        )
    };
    assert!(report(&net, &lease, &honest).status().is_success());
    let bob = net.start_worker("bob", "w1");
    let job = net.wait_done(first);
    assert_eq!(job["result"]["metrics"], honest);
    assert_eq!(net.worker_view("fake")["consecutive_valid"], 1);
    let again = report(&net, &lease, &json!({"accuracy": 1.0}));
    assert!(!again.json::<Value>().unwrap()["accepted"].as_bool().unwrap(), "a second report of the same assignment changes nothing");
    let earned_honestly = net.balance(&mallory);
    assert!(earned_honestly > 1000, "the honest result was paid");

    // Then she fabricates a perfect score.
    let second = submit_eval(&net);
    let lease = pull(&net);
    let mut forged = honest.clone();
    forged["accuracy"] = json!(0.9999);
    forged["loss"] = json!(0.0001);
    assert!(report(&net, &lease, &forged).status().is_success(), "the report is taken, to be judged");
    // Bob's worker disagrees; a third volunteer of another owner breaks the tie.
    let job = net.wait_job(second, "bob's result and the disagreement", Duration::from_secs(120), |j| {
        units_of(j, "eval", false)[0]["assignments"].as_array().unwrap().iter().filter(|a| a["state"] == "reported").count() == 2
    });
    assert_ne!(job["state"], "done", "two disagreeing results are no quorum");
    net.start_worker("carol", "w2");
    let job = net.wait_done(second);
    assert_eq!(job["result"]["metrics"], honest, "the honest result stands");
    let unit = units_of(&job, "eval", false)[0];
    let theirs = assignments(unit).into_iter().find(|a| a["worker"] == "fake").unwrap();
    assert_eq!(theirs["outcome"], "invalid");
    let agreed: Vec<_> =
        assignments(unit).into_iter().filter(|a| a["outcome"] == "valid").map(|a| a["owner"].as_str().unwrap().to_string()).collect();
    assert_eq!(agreed, ["bob", "carol"], "two other owners agreed");
    let fake = net.worker_view("fake");
    assert_eq!(fake["consecutive_valid"], 0, "trust drops to nothing: {fake}");
    assert_eq!(fake["invalid_results"], 1);
    assert_eq!(net.balance(&mallory), earned_honestly, "the fabricated result earned nothing");
    // Both evaluations are on the board with the honest score; the forgery is not.
    let entries = accuracy_board(&net, None);
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert!(entries.iter().all(|e| e["value"] == honest["accuracy"] && e["verification"]["kind"] == "reproduced"), "{entries:#?}");
    let second_entry = entries.iter().find(|e| e["job"]["id"] == second).unwrap();
    let owners: Vec<&str> = second_entry["agreed"].as_array().unwrap().iter().map(|a| a["owner"].as_str().unwrap()).collect();
    assert_eq!(owners, ["bob", "carol"]);
    assert!(net.balance(&bob) > 1000);
    // Reporting for someone else's assignment is refused.
    let foreign = net.post(&format!("/api/assignments/{}/report", theirs["id"]), &net.hub.token, &json!({"status": "error", "error": "x"}));
    assert_eq!(foreign.status(), 404);
    net.audit_ledger();
}

#[test]
fn bad_jobs_get_clear_errors_and_move_no_credit() {
    let net = Network::start(&["--no-worker"]);
    let before = net.balance(&net.hub.token);
    let transfers = net.ledger()["transfers"].as_array().unwrap().len();
    let cases: [(&[&str], u16, &str, &str); 5] = [
        (&["--algorithm", "alice/nope", "--dataset", "alice/mnist"], 404, "RepoNotFound", "algorithm repository alice/nope not found"),
        (&["--algorithm", "alice/keras-mnist-mlp", "--dataset", "alice/mnist@v9"], 404, "RevisionNotFound", "revision \"v9\" not found"),
        (&["--algorithm", "alice/keras-mnist-mlp", "--dataset", "alice/mnist", "--set", "training.bogus=1"], 400, "InvalidRecipe", "bogus"),
        (
            &["--algorithm", "alice/keras-mnist-mlp", "--dataset", "alice/mnist", "--set", "training.epochs=1000"],
            402,
            "InsufficientCredits",
            "your balance is 1000",
        ),
        (&["--algorithm", "keras-mnist-mlp", "--dataset", "alice/mnist"], 400, "BadRequest", "namespace/name"),
    ];
    for (args, status, code, message) in cases {
        let mut full = vec!["job", "submit", "train"];
        full.extend_from_slice(args);
        let out = net.cli_raw(&full, &net.hub.token);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(message) && stderr.contains(&format!("HTTP {status}")) && stderr.contains(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    }
    // The same through the API: JSON errors.
    let resp = net.post("/api/jobs", &net.hub.token, &json!({"kind": "train", "algorithm": "alice/keras-mnist-mlp"}));
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["code"], "BadRequest");
    assert!(body["message"].as_str().unwrap().contains("dataset"), "{body}");
    let resp = net.post(
        "/api/jobs",
        &net.hub.token,
        &json!({"kind": "eval", "model": "alice/nothing", "dataset": "alice/mnist", "split": "holdout"}),
    );
    assert_eq!(resp.status(), 400, "unknown split");
    let anonymous = net
        .http
        .post(format!("{}/api/jobs", net.hub.url()))
        .json(&json!({"kind": "eval", "model": "a/b", "dataset": "a/c"}))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let resp = net.post("/api/workers/register", &net.hub.token, &json!({"protocol_version": 99, "name": "x", "cores": 1, "memory_bytes": 1, "gpu": null, "engine_version": "0", "platform": "p", "numeric_class": "flex", "speed_gflops": 1.0}));
    assert_eq!(resp.status(), 400, "a worker of another protocol version is refused");
    // A worker token runs workers and reads, but spends no credit and writes no repository.
    let worker_token = net.hub.add_token("alice", "worker");
    let resp =
        net.post("/api/jobs", &worker_token, &json!({"kind": "train", "algorithm": "alice/keras-mnist-mlp", "dataset": "alice/mnist"}));
    assert_eq!(resp.status(), 403, "a worker token cannot submit jobs");
    let body: Value = resp.json().unwrap();
    assert!(body["message"].as_str().unwrap().contains("write token"), "{body}");
    let out = net.cli_raw(&["repo", "create", "from-a-worker"], &worker_token);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("HTTP 403"),
        "a worker token cannot create repositories"
    );
    let out = net.cli_raw(
        &["download", "alice/mnist", "--type", "dataset", "--local-dir", net.tmp.path().join("read-by-worker-token").to_str().unwrap()],
        &worker_token,
    );
    assert!(out.status.success(), "a worker token reads: {}", String::from_utf8_lossy(&out.stderr));
    let registered = net.post("/api/workers/register", &worker_token, &json!({"protocol_version": commons_protocol::PROTOCOL_VERSION, "name": "alices-box", "cores": 1, "memory_bytes": 1, "gpu": null, "engine_version": "0", "platform": "p", "numeric_class": "flex", "speed_gflops": 1.0}));
    assert_eq!(registered.status(), 200, "a worker token registers workers");
    let whoami =
        net.http.get(format!("{}/api/whoami-v2", net.hub.url())).bearer_auth(&worker_token).send().unwrap().json::<Value>().unwrap();
    assert_eq!(whoami["auth"]["accessToken"]["role"], "read", "to the Hugging Face clients a worker token is a read token");

    assert_eq!(net.balance(&net.hub.token), before, "no credit moved");
    assert_eq!(net.ledger()["transfers"].as_array().unwrap().len(), transfers, "no transfer written");
    assert!(net.api("/api/jobs").as_array().unwrap().is_empty(), "no job created");

    // An administrator grants credits on the server's data directory, while it runs; a grant
    // retried with its key happens once.
    for _ in 0..2 {
        let out = net.hub.admin(&["credits", "grant", "alice", "500", "--memo", "compute for the workshop", "--key", "workshop-1"]);
        assert!(out.status.success(), "grant: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("alice: {} credits", before + 500));
    }
    let refused = |args: &[&str]| net.hub.admin_command(args).output().unwrap();
    let out = refused(&["credits", "grant", "nobody", "5", "--memo", "x"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no user \"nobody\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = refused(&["credits", "grant", "alice", "0", "--memo", "x"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("positive"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.balance(&net.hub.token), before + 500, "one grant landed");
    let history = net.cli(&["credits"]);
    assert!(history.contains("compute for the workshop"), "the grant's memo is in the history: {history}");
    net.audit_ledger();
}

/// The dataset viewer reads the published MNIST (IDX files) as the Hub's viewer would show
/// it: two splits, a page of images deep in `train` read by range, the labels' frequencies.
fn check_mnist_in_the_viewer(net: &Network) {
    use base64::Engine;
    let get = |path: &str| -> Value { get_as(net, None, &format!("/api/datasets-server{path}")).json().unwrap() };
    let splits = get("/splits?dataset=alice/mnist");
    let names: Vec<&str> = splits["splits"].as_array().unwrap().iter().map(|s| s["split"].as_str().unwrap()).collect();
    assert_eq!(names, ["train", "test"]);
    let dir = mnist_dir();
    let labels = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
    let images = std::fs::read(dir.join("train-images-idx3-ubyte")).unwrap();
    let page = get("/rows?dataset=alice/mnist&config=default&split=train&offset=59998&length=5");
    assert_eq!(page["num_rows_total"], 60_000);
    assert_eq!(page["features"][1]["type"]["names"].as_array().unwrap().len(), 10, "ten classes");
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the last two rows");
    for row in rows {
        let i = row["row_idx"].as_u64().unwrap() as usize;
        assert_eq!(row["row"]["label"], labels[8 + i], "row {i}'s label");
        let src = row["row"]["image"]["src"].as_str().unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(src.strip_prefix("data:image/png;base64,").unwrap()).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (28, 28));
        assert_eq!(&pixels[..784], &images[16 + i * 784..16 + (i + 1) * 784], "row {i}'s pixels");
    }
    let stats = get("/statistics?dataset=alice/mnist&config=default&split=train");
    assert_eq!(stats["num_examples"], 60_000);
    let frequencies = &stats["statistics"][1]["column_statistics"]["frequencies"];
    for digit in 0..10u8 {
        let expected = labels[8..].iter().filter(|&&l| l == digit).count();
        assert_eq!(frequencies[digit.to_string()], expected, "digit {digit}");
    }

    // The Parquet export, as the Hub's converter writes one: each image a PNG in the `datasets`
    // Image struct, each label a ClassLabel, the features in the file's own metadata.
    let listing: Value = get_as(net, None, "/api/datasets/alice/mnist/parquet").json().unwrap();
    let test_url = listing["default"]["test"][0].as_str().unwrap().to_string();
    assert_eq!(listing["default"]["train"].as_array().unwrap().len(), 1);
    let path = test_url.split_once("/api/").map(|(_, p)| format!("/api/{p}")).unwrap();
    let bytes = get_as(net, None, &path).bytes().unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let features: Value = serde_json::from_str(&reader.schema().metadata()["huggingface"]).unwrap();
    assert_eq!(features["info"]["features"]["label"]["_type"], "ClassLabel");
    assert_eq!(features["info"]["features"]["image"]["_type"], "Image");
    let test_labels = std::fs::read(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    let test_images = std::fs::read(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let (mut seen, mut first_png) = (Vec::new(), None);
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let labels = batch.column_by_name("label").unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        seen.extend(labels.values().iter().map(|&l| l as u8));
        if first_png.is_none() {
            let image = batch.column_by_name("image").unwrap().as_any().downcast_ref::<arrow_array::StructArray>().unwrap();
            let png = image.column_by_name("bytes").unwrap().as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
            first_png = Some(png.value(0).to_vec());
        }
    }
    assert_eq!(seen, test_labels[8..], "every label of the test split, in order");
    let mut png = png::Decoder::new(std::io::Cursor::new(first_png.unwrap())).read_info().unwrap();
    let mut pixels = vec![0; png.output_buffer_size().unwrap()];
    png.next_frame(&mut pixels).unwrap();
    assert_eq!(&pixels[..784], &test_images[16..16 + 784], "the first image's pixels");
}

#[test]
fn serve_alone_runs_jobs_out_of_the_box_on_its_embedded_worker() {
    let net = Network::start(&[]);
    check_mnist_in_the_viewer(&net);
    let id = net.submit_train(1);
    let job = net.wait_done(id);
    let validation = units_of(&job, "eval", true);
    assert_eq!(validation.len(), 1);
    let embedded = net.worker_view("embedded");
    assert_eq!(embedded["owner"], "commons");
    assert!(embedded["trusted"].as_bool().unwrap(), "the operator's own host is trusted");
    assert!(job["result"]["test"]["accuracy"].as_f64().unwrap() > 0.9);
    // Trained and evaluated by the operator's host alone: the board and the card say so, and
    // the card's results are not marked verified.
    let entries = accuracy_board(&net, None);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["verification"]["kind"], "attested", "{:#}", entries[0]);
    assert_eq!(entries[0]["verification"]["owners"], 1);
    let text = entries[0]["verification"]["text"].as_str().unwrap();
    assert!(text.contains("operator's own trusted host alone") && text.contains("not reproduced independently"), "{text}");
    let card =
        net.http.get(format!("{}/alice/keras-mnist-mlp-mnist/resolve/main/README.md", net.hub.url())).send().unwrap().text().unwrap();
    assert!(card.contains(&format!("- Verification: {text}")), "{card}");
    assert!(card.contains("verified: false") && !card.contains("verified: true"), "{card}");
    // Cancelling a finished job is refused; a queued one returns its escrow.
    let out = net.cli_raw(&["job", "cancel", &id.to_string()], &net.hub.token);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already done"));
    net.audit_ledger();
}

#[test]
fn a_unit_that_no_online_worker_may_take_says_why_it_waits() {
    let mut net = Network::start(&["--no-worker"]);
    net.start_worker("bob", "w1");
    let id = net.submit_train(1);
    // Bob trains; the validation must come from another owner, and none is online.
    let job = net.wait_job(id, "the validation to wait for another owner", Duration::from_secs(180), |j| {
        units_of(j, "eval", true).first().is_some_and(|u| u["waiting"].is_string())
    });
    let waiting = units_of(&job, "eval", true)[0]["waiting"].as_str().unwrap().to_string();
    assert!(waiting.contains("owned by someone other than bob") && waiting.contains("numeric class"), "{waiting}");
    let status = net.cli(&["job", "status", &id.to_string()]);
    assert!(status.contains(&waiting), "`commons job status` shows why: {status}");
    // A second volunteer arrives: the unit is taken and the job completes.
    net.start_worker("carol", "w2");
    let job = net.wait_done(id);
    assert!(job["units"].as_array().unwrap().iter().all(|u| u["waiting"].is_null()), "{job:#}");
    net.audit_ledger();
}

#[test]
fn a_job_that_asks_for_a_gpu_goes_only_to_a_worker_that_offers_one() {
    let net = Network::start(&["--no-worker"]);
    let bob = net.hub.add_user("bob");
    let carol = net.hub.add_user("carol");
    let cpu = net.register_raw_worker_with(&bob, "cpu-box", None);
    let pull = |token: &str, worker: i64| net.post(&format!("/api/workers/{worker}/pull?wait=1"), token, &json!({}));

    let id = net.submit_train_with(1, &["--gpu"]);
    let job = net.job(id);
    assert_eq!(job["spec"]["gpu"], true, "{job:#}");
    // The CPU worker is offered nothing, and the unit says what it waits for.
    assert_eq!(pull(&bob, cpu).status(), 204, "a CPU worker must not get a GPU job's unit");
    let waiting = units_of(&net.job(id), "train", false)[0]["waiting"].as_str().map(str::to_string);
    assert!(
        waiting.as_deref().is_some_and(|w| w.contains("a worker with a GPU") && w.contains("none of the 1 online workers")),
        "{waiting:?}"
    );
    let status = net.cli(&["job", "status", &id.to_string()]);
    assert!(status.contains("on GPU workers"), "{status}");

    // A worker with a GPU arrives and gets the unit.
    let gpu = net.register_raw_worker_with(&carol, "gpu-box", Some("H100"));
    assert!(units_of(&net.job(id), "train", false)[0]["waiting"].is_null(), "a taker is online");
    let resp = pull(&carol, gpu);
    assert_eq!(resp.status(), 200, "the GPU worker gets the unit");
    let lease: Value = resp.json().unwrap();
    assert_eq!(lease["job_id"], id, "{lease}");
    assert!(units_of(&net.job(id), "train", false)[0]["waiting"].is_null());

    // A job that asks for no GPU goes to either; the GPU worker takes GPU jobs first.
    let plain = net.submit_train(1);
    assert_eq!(net.job(plain)["spec"].get("gpu"), None, "no GPU asked, none shown");
    let second = net.submit_train_with(2, &["--gpu"]);
    let resp = pull(&carol, gpu);
    assert_eq!(resp.json::<Value>().unwrap()["job_id"], second, "the GPU worker serves the newer GPU job before the older plain one");
    let resp = pull(&bob, cpu);
    assert_eq!(resp.status(), 200, "the CPU worker gets the plain job's unit");
    assert_eq!(resp.json::<Value>().unwrap()["job_id"], plain);
}

#[test]
fn cancelling_a_job_stops_its_worker_and_returns_the_escrow() {
    let mut net = Network::start(&["--no-worker"]);
    let bob = net.start_worker("bob", "w1");
    let id = net.submit_train(12);
    net.wait_job(id, "training to start", Duration::from_secs(120), |j| running_train_assignment(j).is_some());
    net.cli(&["job", "cancel", &id.to_string()]);
    let job = net.job(id);
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["paid"], 0);
    assert_eq!(job["refunded"], job["escrow"], "the whole escrow came back");
    assert_eq!(net.balance(&net.hub.token), 1000);
    // The worker hears it at its next heartbeat and stops the unit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let worker_log = net.tmp.path().join("worker-w1.log");
    while !std::fs::read_to_string(&worker_log).unwrap_or_default().contains("stopping the unit") {
        assert!(Instant::now() < deadline, "the worker kept running a cancelled unit");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(net.worker_view("w1")["running"].as_array().unwrap().is_empty());
    let assignment = &units_of(&job, "train", false)[0]["assignments"][0];
    assert_eq!(assignment["state"], "cancelled");
    assert!(assignment["progress"]["epoch"].as_u64().unwrap() < 12, "stopped mid-training");
    assert_eq!(net.balance(&bob), 1000, "no credit for cancelled work");
    net.audit_ledger();
}

#[test]
fn a_training_claim_that_does_not_reproduce_is_rejected_and_the_unit_is_trained_again() {
    let mut net = Network::start(&["--no-worker"]);
    // Mallory takes the train unit over the worker protocol, publishes a real model with the
    // lease's upload token, and claims a better test score than it has.
    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "liar");
    // She trains her model beforehand, so her lease never lapses while she works.
    let (model_dir, data) = net.train_locally("liar-model", &["training.seed=7"]);
    let id = net.submit_train(1);
    let lease: Value = net.post(&format!("/api/workers/{worker_id}/pull?wait=10"), &mallory, &json!({})).json().unwrap();
    let heartbeat = || {
        let beat = net.post(&format!("/api/assignments/{}/heartbeat", lease["assignment_id"]), &mallory, &json!({"log": ["working"]}));
        assert!(!beat.json::<Value>().unwrap()["stop"].as_bool().unwrap(), "the lease is alive");
    };
    let upload_token = lease["upload_token"].as_str().expect("a train lease carries an upload token").to_string();
    let branch = lease["work"]["output_branch"].as_str().unwrap().to_string();
    let repo = lease["work"]["output_repo"].as_str().unwrap().to_string();

    // The upload token writes that one repository and nothing else.
    let elsewhere = net.cli_raw(&["repo", "create", "mallory/stolen"], &upload_token);
    assert!(!elsewhere.status.success(), "a repo-limited token cannot create repositories");
    heartbeat();
    let to_main = net.cli_raw(&["upload", &repo, model_dir.to_str().unwrap()], &upload_token);
    assert!(!to_main.status.success(), "the upload token cannot write main, which only validation moves");
    assert!(
        String::from_utf8_lossy(&to_main.stderr).contains(&format!("may only write branch {branch}")),
        "{}",
        String::from_utf8_lossy(&to_main.stderr)
    );
    let out = net.cli_raw(&["upload", &repo, model_dir.to_str().unwrap(), "--revision", &branch], &upload_token);
    assert!(out.status.success(), "upload with the lease's token: {}", String::from_utf8_lossy(&out.stderr));
    heartbeat();
    let commit = net.api(&format!("/api/models/{repo}/revision/{branch}"))["sha"].as_str().unwrap().to_string();
    let mut claimed = honest_metrics(&model_dir, &data);
    claimed["accuracy"] = json!(0.9995);
    // Claiming a commit that is not the head of her own branch (here: main) is refused outright.
    let main = net.api(&format!("/api/models/{repo}"))["sha"].as_str().unwrap().to_string();
    let foreign = net.post(
        &format!("/api/assignments/{}/report", lease["assignment_id"]),
        &mallory,
        &json!({"status": "success", "output": {"role": "train", "model_commit": main, "test": claimed, "flops": 1e12, "epochs": 1, "wall_seconds": 1.0}}),
    );
    assert_eq!(foreign.status(), 400, "a model from elsewhere cannot be claimed");
    let report = net.post(
        &format!("/api/assignments/{}/report", lease["assignment_id"]),
        &mallory,
        &json!({"status": "success", "output": {"role": "train", "model_commit": commit, "test": claimed, "flops": 1e12, "epochs": 1, "wall_seconds": 1.0}}),
    );
    assert!(report.status().is_success());

    // Two honest volunteers evaluate the model, disagree with the claim, and agree with each
    // other; the unit is trained again by one of them and confirmed by the other.
    let bob = net.start_worker("bob", "w1");
    let carol = net.start_worker("carol", "w2");
    let job = net.wait_done(id);
    let train = units_of(&job, "train", false)[0];
    let liar = assignments(train).into_iter().find(|a| a["worker"] == "liar").unwrap();
    assert_eq!(liar["outcome"], "invalid", "the claim was rejected: {train:#}");
    let accepted = assignments(train).into_iter().find(|a| a["outcome"] == "valid").expect("a retrained result was accepted");
    assert_ne!(accepted["owner"], "mallory");
    let validations = units_of(&job, "eval", true);
    assert_eq!(validations.len(), 2, "one validation per claim");
    assert!(job["result"]["test"]["accuracy"].as_f64().unwrap() < 0.9995, "the published score is the reproduced one");
    // The board holds the reproduced result alone; the claim never appears.
    let entries = accuracy_board(&net, None);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["value"], job["result"]["test"]["accuracy"]);
    assert!(entries[0]["agreed"].as_array().unwrap().iter().all(|a| a["owner"] != "mallory"), "{:#}", entries[0]);
    assert_eq!(net.worker_view("liar")["invalid_results"], 1);
    assert_eq!(net.balance(&mallory), 1000, "the false claim earned nothing");
    assert!(net.balance(&bob) > 1000 && net.balance(&carol) > 1000, "both honest volunteers were paid");
    let logs = net.cli(&["job", "logs", &id.to_string()]);
    assert!(logs.contains("was not reproduced"), "{logs}");
    net.audit_ledger();
}

#[test]
fn an_evaluation_split_into_shards_is_validated_shard_by_shard_and_adds_up_to_the_whole() {
    let mut net = Network::start(&["--no-worker"]);
    let (_, _, whole) = net.publish_local_model();
    net.start_worker("bob", "w1");
    net.start_worker("carol", "w2");
    let out = net.cli(&["job", "submit", "eval", "--model", "alice/mlp", "--dataset", "alice/mnist", "--shards", "3", "--watch"]);
    let id: i64 = out.lines().last().unwrap().trim().parse().unwrap();
    let job = net.wait_done(id);
    let units = units_of(&job, "eval", false);
    assert_eq!(units.len(), 3, "one unit per shard");
    for unit in &units {
        let valid: Vec<_> = assignments(unit).into_iter().filter(|a| a["outcome"] == "valid").collect();
        assert_eq!(valid.len(), 2, "each shard agreed on by two owners: {unit:#}");
        assert!(valid[0]["output"]["metrics"]["examples"].as_u64().unwrap() < 10_000);
    }
    let merged = &job["result"]["metrics"];
    assert_eq!(merged["examples"], 10_000);
    assert_eq!(merged["accuracy"], whole["accuracy"], "shard counts add up exactly");
    assert_eq!(merged["confusion_matrix"], whole["confusion_matrix"]);
    let (a, b) = (merged["loss"].as_f64().unwrap(), whole["loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-9 * b.abs(), "loss {a} vs {b}");
    let paid: i64 = units.iter().map(|u| 2 * u["credits"].as_i64().unwrap()).sum();
    assert_eq!(job["paid"], paid);
    net.audit_ledger();
}

#[test]
fn a_batch_inference_job_writes_every_prediction_to_a_dataset_repo_that_the_viewer_and_the_clients_read() {
    let mut net = Network::start(&["--no-worker"]);
    let (model_dir, data, whole) = net.publish_local_model();
    // Refused before anything is written: a split that does not exist, too few units for the
    // examples, a name no repository may have.
    let jobs_before = net.api("/api/jobs").as_array().map_or(0, Vec::len);
    for (body, expected) in [
        (json!({"kind": "predict", "model": "alice/mlp", "dataset": "alice/mnist", "split": "holdout"}), "unknown split"),
        (json!({"kind": "predict", "model": "alice/mlp", "dataset": "alice/mnist", "split": "train", "shards": 2}), "use at least"),
        (json!({"kind": "predict", "model": "alice/mlp", "dataset": "alice/mnist", "output": "no spaces here"}), "output repository name"),
        (json!({"kind": "predict", "model": "alice/keras-mnist-mlp", "dataset": "alice/mnist"}), "not found"),
    ] {
        let resp = net.post("/api/jobs", &net.hub.token, &body);
        let status = resp.status();
        let answer: Value = resp.json().unwrap();
        assert!(status == 400 || status == 404, "{body}: {status} {answer}");
        assert!(answer["message"].as_str().unwrap().contains(expected), "{body}: {answer}");
    }
    assert_eq!(net.api("/api/jobs").as_array().map_or(0, Vec::len), jobs_before, "no job was created");
    let missing = net.http.get(format!("{}/api/datasets/alice/no%20spaces%20here", net.hub.url())).send().unwrap();
    assert_eq!(missing.status(), 404);

    net.start_worker("bob", "w1");
    net.start_worker("carol", "w2");
    let out = net.cli(&[
        "job",
        "submit",
        "predict",
        "--model",
        "alice/mlp",
        "--dataset",
        "alice/mnist",
        "--shards",
        "2",
        "--output",
        "mnist-predictions",
        "--watch",
    ]);
    let id: i64 = out.lines().last().unwrap().trim().parse().unwrap();
    let job = net.wait_done(id);
    let units = units_of(&job, "predict", false);
    assert_eq!(units.len(), 2, "one unit per shard");
    for unit in &units {
        let valid: Vec<_> = assignments(unit).into_iter().filter(|a| a["outcome"] == "valid").collect();
        assert_eq!(valid.len(), 2, "each shard agreed on by two owners: {unit:#}");
        assert_eq!(valid[0]["output"]["output_hash"], valid[1]["output"]["output_hash"]);
        assert!(valid[0]["output"]["output_hash"].is_string(), "the view names the predictions by their hash: {unit:#}");
    }
    let result = &job["result"];
    assert_eq!(result["predictions"]["repo"], "alice/mnist-predictions");
    assert_eq!(result["predictions"]["rows"], 10_000);
    assert_eq!(result["label_agreement"], whole["accuracy"], "the predictions are right exactly as often as the evaluation says");

    // The file, as `huggingface_hub` downloads it: every test example in order, each with the
    // class and probability, beside the dataset's own label.
    let path = result["predictions"]["path"].as_str().unwrap();
    assert_eq!(path, "data/test-00000-of-00001.parquet");
    let bytes = get_as(&net, None, &format!("/datasets/alice/mnist-predictions/resolve/main/{path}")).bytes().unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let features: Value = serde_json::from_str(&reader.schema().metadata()["huggingface"]).unwrap();
    assert_eq!(features["info"]["features"]["prediction"]["_type"], "ClassLabel");
    assert_eq!(features["info"]["features"]["prediction"]["names"].as_array().unwrap().len(), 10);
    let (mut rows, mut predicted, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let ints = |name: &str| -> Vec<i64> {
            batch.column_by_name(name).unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().values().to_vec()
        };
        rows.extend(ints("row"));
        predicted.extend(ints("prediction"));
        labels.extend(ints("label"));
        let score = batch.column_by_name("score").unwrap().as_any().downcast_ref::<arrow_array::Float32Array>().unwrap();
        scores.extend(score.values().iter().copied());
    }
    assert_eq!(rows, (0..10_000).collect::<Vec<i64>>(), "every example once, in split order");
    let test_labels = std::fs::read(data.join("t10k-labels-idx1-ubyte")).unwrap();
    assert_eq!(labels, test_labels[8..].iter().map(|&l| i64::from(l)).collect::<Vec<_>>(), "each row's own label");
    assert!(predicted.iter().all(|p| (0..10).contains(p)) && scores.iter().all(|s| *s >= 0.1 && *s <= 1.0), "a class and its probability");
    let hits = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert_eq!(hits as f64 / 10_000.0, whole["accuracy"].as_f64().unwrap());

    // Row 0 is what `commons predict` answers for the same digit saved as a PNG.
    let images = commons_data::idx::read_images(&data.join("t10k-images-idx3-ubyte")).unwrap();
    let digit = net.tmp.path().join("digit-0.png");
    support::mnist_png(&images, 0, 1, &digit);
    let answer = Command::new(BIN).arg("predict").arg(&model_dir).args(["--input", digit.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(answer.status.success(), "{}", String::from_utf8_lossy(&answer.stderr));
    let classes: Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(classes[0]["label"], predicted[0].to_string());
    assert!((classes[0]["score"].as_f64().unwrap() - f64::from(scores[0])).abs() < 1e-5, "{classes} vs {}", scores[0]);

    // The viewer shows the predictions as a dataset of their own, and the card says where
    // they came from.
    let page: Value =
        get_as(&net, None, "/api/datasets-server/rows?dataset=alice/mnist-predictions&config=default&split=test&offset=9998&length=5")
            .json()
            .unwrap();
    assert_eq!(page["num_rows_total"], 10_000);
    let last = page["rows"].as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[1]["row"]["row"], 9_999);
    assert_eq!(last[1]["row"]["prediction"], predicted[9_999]);
    let card = get_as(&net, None, "/datasets/alice/mnist-predictions/resolve/main/README.md").text().unwrap();
    assert!(card.contains("base_model: alice/mlp") && card.contains(&format!("Commons job {id}")), "{card}");
    assert!(card.contains(&format!("The prediction equals the label for {hits} of 10000 examples")), "{card}");
    let html = get_as(&net, None, &format!("/jobs/{id}")).text().unwrap();
    assert!(html.contains("/datasets/alice/mnist-predictions"), "the job page links the predictions");
    let paid: i64 = units.iter().map(|u| 2 * u["credits"].as_i64().unwrap()).sum();
    assert_eq!(job["paid"], paid);
    net.audit_ledger();
}

/// `alice`'s token, or another user's, GETs `path`; asserts success.
fn get_as(net: &Network, token: Option<&str>, path: &str) -> reqwest::blocking::Response {
    let mut request = net.http.get(format!("{}{path}", net.hub.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp
}

/// The entries of MNIST's test-accuracy board as `token` (or anyone) sees them.
fn accuracy_board(net: &Network, token: Option<&str>) -> Vec<Value> {
    let board: Value = get_as(net, token, "/api/leaderboards/alice/mnist?split=test&metric=accuracy").json().unwrap();
    assert_eq!((&board["dataset"], &board["split"], &board["metric"]), (&json!("alice/mnist"), &json!("test"), &json!("accuracy")));
    board["entries"].as_array().unwrap().clone()
}

fn submit_sweep(net: &Network, token: &str, sweep: &str) -> i64 {
    let args = [
        "job",
        "submit",
        "train",
        "--algorithm",
        "alice/keras-mnist-mlp",
        "--dataset",
        "alice/mnist",
        "--set",
        "training.epochs=1",
        "--sweep",
        sweep,
    ];
    let out = net.cli_raw(&args, token);
    assert!(out.status.success(), "submitting a sweep: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn an_onnx_model_built_elsewhere_is_evaluated_by_volunteers_and_ranked_on_the_board() {
    let mut net = Network::start(&["--no-worker"]);
    let (model_dir, expected) = centroid_onnx_model(net.tmp.path(), &mnist_dir());
    net.cli(&["repo", "create", "centroid"]);
    net.cli(&["upload", "centroid", model_dir.to_str().unwrap()]);
    net.start_worker("bob", "w1");
    net.start_worker("carol", "w2");
    let out = net.cli(&["job", "submit", "eval", "--model", "alice/centroid", "--dataset", "alice/mnist", "--watch"]);
    let id: i64 = out.lines().last().unwrap().trim().parse().unwrap();
    let job = net.wait_done(id);
    let accuracy = job["result"]["metrics"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - expected).abs() <= 2e-4, "the graph's accuracy {accuracy}, worked out {expected}");
    let units = units_of(&job, "eval", false);
    let valid: Vec<_> = assignments(units[0]).into_iter().filter(|a| a["outcome"] == "valid").collect();
    assert_eq!(valid.len(), 2, "two owners agreed bit for bit: {:#}", units[0]);
    let entries = accuracy_board(&net, None);
    let entry = entries.iter().find(|e| e["model"]["id"] == "alice/centroid").unwrap_or_else(|| panic!("on the board: {entries:#?}"));
    assert_eq!(entry["value"].as_f64(), Some(accuracy));
    assert_eq!(entry["verification"]["kind"], "reproduced", "{entry:#}");
    net.audit_ledger();
}

#[test]
fn two_sweeps_by_different_users_are_ranked_on_one_verified_board() {
    let mut net = Network::start(&["--no-worker"]);
    net.start_worker("bob", "w1");
    net.start_worker("carol", "w2");
    let erin = net.hub.add_user("erin");
    let alice_job = submit_sweep(&net, &net.hub.token, "training.optimizer.lr=0.0001,0.001");
    let erin_job = submit_sweep(&net, &erin, "training.batch_size=64,256");
    let job = net.wait_done(alice_job);
    let erin_result = net.wait_done(erin_job)["result"].clone();
    assert_eq!(units_of(&job, "train", false).len(), 2, "one train unit per point");
    assert_eq!(units_of(&job, "eval", true).len(), 2, "each point validated");
    let points = job["result"]["points"].as_array().expect("the sweep's points");
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["overrides"], json!(["training.epochs=1", "training.optimizer.lr=0.0001"]));
    let best = job["result"]["best"].as_u64().unwrap() as usize;
    let accuracies: Vec<f64> = points.iter().map(|p| p["test"]["accuracy"].as_f64().unwrap()).collect();
    assert!(accuracies[best] >= accuracies[1 - best], "the best point is published: {accuracies:?}");
    let main = net.api("/api/models/alice/keras-mnist-mlp-mnist")["sha"].as_str().unwrap().to_string();
    assert_eq!(main, points[best]["revision"].as_str().unwrap());
    // Every point's validated model stays reachable on its branch.
    for point in points {
        let branch = point["branch"].as_str().unwrap();
        let head = net.api(&format!("/api/models/alice/keras-mnist-mlp-mnist/revision/{branch}"));
        assert_eq!(head["sha"], point["revision"]);
    }

    // The board ranks all four validated models of both users, best first, each with how it
    // was verified and what it came from.
    let entries = accuracy_board(&net, None);
    let mut expected: Vec<(f64, String, i64)> = Vec::new();
    for (id, result) in [(alice_job, &job["result"]), (erin_job, &erin_result)] {
        let repo = result["model"]["repo"].as_str().unwrap();
        for point in result["points"].as_array().unwrap() {
            expected.push((point["test"]["accuracy"].as_f64().unwrap(), format!("{repo}@{}", point["revision"].as_str().unwrap()), id));
        }
    }
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
    let ranked: Vec<(f64, String, i64)> = entries
        .iter()
        .map(|e| {
            let model = format!("{}@{}", e["model"]["id"].as_str().unwrap(), e["model"]["revision"].as_str().unwrap());
            (e["value"].as_f64().unwrap(), model, e["job"]["id"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(ranked.iter().map(|r| (r.0, &r.1)).collect::<Vec<_>>(), expected.iter().map(|r| (r.0, &r.1)).collect::<Vec<_>>());
    let algorithm_rev = net.api("/api/algorithms/alice/keras-mnist-mlp")["sha"].clone();
    let dataset_rev = net.api("/api/datasets/alice/mnist")["sha"].clone();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["rank"], i + 1);
        assert_eq!(entry["verification"]["kind"], "reproduced", "{entry:#}");
        assert_eq!(entry["verification"]["owners"], 2, "trainer and evaluator of two owners: {entry:#}");
        assert_eq!(entry["verification"]["text"], "reproduced bit for bit by 2 workers of 2 distinct owners");
        let owners: Vec<&str> = entry["agreed"].as_array().unwrap().iter().map(|a| a["owner"].as_str().unwrap()).collect();
        assert!(owners.contains(&"bob") && owners.contains(&"carol"), "{owners:?}");
        assert_eq!(entry["algorithm"], json!({"id": "alice/keras-mnist-mlp", "revision": algorithm_rev}));
        assert_eq!(entry["dataset"], json!({"id": "alice/mnist", "revision": dataset_rev}));
        assert_eq!(entry["recipe"]["path"], "recipe.toml");
        assert!(entry["recipe"]["overrides"].as_array().unwrap().len() == 2, "the point's recipe values: {entry:#}");
        assert_eq!(entry["metrics"]["accuracy"], entry["value"]);
        assert!(entry["credits"].as_i64().unwrap() > 0);
    }
    // What each job paid is what its entries cost.
    for id in [alice_job, erin_job] {
        let paid: i64 = entries.iter().filter(|e| e["job"]["id"] == id).map(|e| e["credits"].as_i64().unwrap()).sum();
        assert_eq!(paid, net.job(id)["paid"].as_i64().unwrap(), "job {id}'s entries cost what it paid");
    }
    // Loss ranks the other way; pages follow `Link`; the CSV export is the same entries.
    let loss: Value = get_as(&net, None, "/api/leaderboards/alice/mnist?metric=loss").json().unwrap();
    let losses: Vec<f64> = loss["entries"].as_array().unwrap().iter().map(|e| e["value"].as_f64().unwrap()).collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]) && losses.len() == 4, "lowest loss first: {losses:?}");
    let first = get_as(&net, None, "/api/leaderboards/alice/mnist?metric=accuracy&limit=3");
    let next = first.headers()["link"].to_str().unwrap().to_string();
    let next = next.trim_start_matches('<').split('>').next().unwrap().to_string();
    let rest: Value = net.http.get(next).send().unwrap().json().unwrap();
    assert_eq!(first.json::<Value>().unwrap()["entries"].as_array().unwrap().len(), 3);
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert_eq!(rest["entries"][0]["rank"], 4);
    assert_eq!(rest["entries"][0]["model"], entries[3]["model"]);
    let csv = get_as(&net, None, "/api/leaderboards/alice/mnist?metric=accuracy&format=csv").text().unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap().split(',').take(5).collect::<Vec<_>>(), ["rank", "model", "model_revision", "value", "verification"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), entries.len());
    for (row, entry) in rows.iter().zip(&entries) {
        assert_eq!(row[0], entry["rank"].to_string());
        assert_eq!(row[1], entry["model"]["id"].as_str().unwrap());
        assert_eq!(row[2], entry["model"]["revision"].as_str().unwrap());
        assert_eq!(row[3].parse::<f64>().unwrap(), entry["value"].as_f64().unwrap());
        assert_eq!(row[4], "reproduced");
        assert_eq!(row[14], entry["job"]["id"].to_string());
    }
    // The board's page links to the dataset's other boards, not to itself.
    let page = get_as(&net, None, "/leaderboards/alice/mnist?split=test&metric=accuracy").text().unwrap();
    assert!(page.contains("/leaderboards/alice/mnist?split=test&amp;metric=loss\">test · loss</a>"), "{page}");
    assert!(!page.contains(">test · accuracy</a>"), "{page}");
    let boards: Vec<Value> = get_as(&net, None, "/api/leaderboards").json().unwrap();
    let accuracy = boards.iter().find(|b| b["dataset"] == "alice/mnist" && b["metric"] == "accuracy").expect("the board is listed");
    assert_eq!(accuracy["entries"], 4);
    assert_eq!(accuracy["best"], entries[0]["value"]);
    let of_model: Vec<Value> = get_as(&net, None, "/api/models/alice/keras-mnist-mlp-mnist/leaderboards").json().unwrap();
    assert_eq!(of_model.iter().filter(|e| e["metric"] == "accuracy").count(), 2, "a model's verified results");

    // Bad questions get clear answers.
    for (path, status) in [
        ("/api/leaderboards/alice/mnist?metric=bleu", 404),
        ("/api/leaderboards/alice/nothing", 404),
        ("/api/leaderboards/alice/mnist?format=xml", 400),
        ("/api/leaderboards?dataset=mnist", 400),
    ] {
        let resp = net.http.get(format!("{}{path}", net.hub.url())).send().unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert!(resp.json::<Value>().unwrap()["message"].is_string(), "{path}: a JSON error");
    }
    let long = format!("/api/leaderboards/alice/mnist?split={}", "x".repeat(101));
    assert_eq!(net.http.get(format!("{}{long}", net.hub.url())).send().unwrap().status(), 400);

    // The model's card carries the verified results; the official client reads them.
    let alice_best = entries.iter().find(|e| e["model"]["revision"] == main.as_str()).unwrap();
    for version in ["0.36.2", "1.0.0", "2.4.0"] {
        let python = support::python_venv("huggingface_hub", version);
        let hf_home = net.tmp.path().join(format!("hf-{version}"));
        let out = support::python_script(&python, "hf_model_index.py", &net.hub.url(), &hf_home)
            .env("MODEL", "alice/keras-mnist-mlp-mnist")
            .env("DATASET", "alice/mnist")
            .env("DATASET_REVISION", dataset_rev.as_str().unwrap())
            .env("ACCURACY", alice_best["value"].to_string())
            .output()
            .unwrap();
        support::assert_python_passed(&out, &format!("ModelCard.load with huggingface_hub {version}"));
    }

    // Erin makes her model private: it leaves the board for everyone but her.
    let settings = net
        .http
        .put(format!("{}/api/models/erin/keras-mnist-mlp-mnist/settings", net.hub.url()))
        .bearer_auth(&erin)
        .json(&json!({"private": true}))
        .send()
        .unwrap();
    assert!(settings.status().is_success());
    assert_eq!(accuracy_board(&net, Some(&erin)).len(), 4, "erin sees her own");
    for viewer in [None, Some(net.hub.token.as_str())] {
        let seen = accuracy_board(&net, viewer);
        assert_eq!(seen.len(), 2, "others see alice's two: {seen:#?}");
        assert!(seen.iter().all(|e| e["model"]["id"] == "alice/keras-mnist-mlp-mnist"));
        assert_eq!((seen[0]["rank"].as_u64(), seen[1]["rank"].as_u64()), (Some(1), Some(2)));
        let boards: Vec<Value> = get_as(&net, viewer, "/api/leaderboards").json().unwrap();
        assert!(boards.iter().all(|b| b["entries"] == 2), "{boards:#?}");
        let csv = get_as(&net, viewer, "/api/leaderboards/alice/mnist?format=csv").text().unwrap();
        assert!(!csv.contains("erin/"), "{csv}");
    }
    let hidden = net.http.get(format!("{}/api/models/erin/keras-mnist-mlp-mnist/leaderboards", net.hub.url())).send().unwrap();
    assert_eq!(hidden.status(), 404);
    net.audit_ledger();
}

/// A raw worker of `owner` takes the job's train unit; returns the lease.
fn lease_train_unit(net: &Network, token: &str, worker_id: i64) -> Value {
    let resp = net.post(&format!("/api/workers/{worker_id}/pull?wait=10"), token, &json!({}));
    assert_eq!(resp.status(), 200, "a lease for the train unit");
    let lease: Value = resp.json().unwrap();
    assert!(lease["upload_token"].is_string(), "a train lease carries a lease token: {lease}");
    lease
}

/// An NDJSON commit of one small inline file to `branch` of model repo `repo`.
fn commit_file(
    net: &Network,
    token: &str,
    repo: &str,
    branch: &str,
    title: &str,
    path: &str,
    content: &[u8],
) -> reqwest::blocking::Response {
    use base64::Engine;
    let body = format!(
        "{}\n{}\n",
        json!({"key": "header", "value": {"summary": title}}),
        json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(content), "encoding": "base64"}})
    );
    net.http
        .post(format!("{}/api/models/{repo}/commit/{}", net.hub.url(), branch.replace('/', "%2F")))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn a_trainer_cannot_publish_its_own_commit_as_validated() {
    let mut net = Network::start(&["--no-worker"]);
    // Mallory trains an honest model and claims it honestly; after reporting she pushes a
    // "validated" commit with other weights to her unit branch, hoping promotion takes the head.
    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "forger");
    let (model_dir, data) = net.train_locally("mallory-model", &[]);
    let id = net.submit_train(1);
    let lease = lease_train_unit(&net, &mallory, worker_id);
    let token = lease["upload_token"].as_str().unwrap().to_string();
    let branch = lease["work"]["output_branch"].as_str().unwrap().to_string();
    let repo = lease["work"]["output_repo"].as_str().unwrap().to_string();
    let out = net.cli_raw(&["upload", &repo, model_dir.to_str().unwrap(), "--revision", &branch], &token);
    assert!(out.status.success(), "upload with the lease's token: {}", String::from_utf8_lossy(&out.stderr));
    let reported = net.api(&format!("/api/models/{repo}/revision/{branch}"))["sha"].as_str().unwrap().to_string();
    let report = net.post(
        &format!("/api/assignments/{}/report", lease["assignment_id"]),
        &mallory,
        &json!({"status": "success", "output": {"role": "train", "model_commit": reported, "test": honest_metrics(&model_dir, &data), "flops": 1e12, "epochs": 1, "wall_seconds": 1.0}}),
    );
    assert!(report.status().is_success());

    // The report ended her write access: the forged commit is refused as from an unknown token.
    let forged = commit_file(&net, &token, &repo, &branch, &format!("Validated by job {id}"), "model.safetensors", b"backdoored weights");
    assert_eq!(forged.status(), 401, "a lease token dies when its assignment reports");
    assert_eq!(net.api(&format!("/api/models/{repo}/revision/{branch}"))["sha"], reported.as_str(), "nothing landed");
    // Even a commit that does land on the branch (the repository owner's own) changes nothing of
    // what is published: the validated revision is built on the evaluated commit.
    let owner_push = commit_file(&net, &net.hub.token, &repo, &branch, &format!("Validated by job {id}"), "backdoor.txt", b"owned");
    assert!(owner_push.status().is_success(), "the owner may write her own repository");

    net.start_worker("bob", "w1");
    let job = net.wait_done(id);
    let published = job["result"]["model"]["revision"].as_str().unwrap().to_string();
    assert_eq!(net.api(&format!("/api/models/{repo}"))["sha"], published.as_str(), "main is the validated revision");
    let history = net.api(&format!("/api/models/{repo}/commits/main"));
    assert_eq!(history[0]["id"], published.as_str());
    assert_eq!(history[0]["title"], format!("Validated by job {id}"));
    assert_eq!(history[0]["authors"][0]["user"], "commons", "the coordinator made the validated commit");
    assert_eq!(history[1]["id"], reported.as_str(), "the validated commit sits on exactly the commit that was evaluated");
    let files = net.api(&format!("/api/models/{repo}/tree/main?recursive=true")).to_string();
    assert!(!files.contains("backdoor.txt"), "nothing pushed after the report is published: {files}");
    let weights = |rev: &str| {
        net.api(&format!("/api/models/{repo}/revision/{rev}?blobs=true"))["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rfilename"] == "model.safetensors")
            .unwrap()["lfs"]["sha256"]
            .clone()
    };
    assert_eq!(weights(&published), weights(&reported), "the published weights are the evaluated ones");
    assert_eq!(
        net.api(&format!("/api/models/{repo}/revision/{branch}"))["sha"],
        published.as_str(),
        "the unit branch holds the validated commit"
    );
    net.audit_ledger();
}

#[test]
fn a_commit_to_a_decided_unit_branch_cannot_stall_its_job() {
    let mut net = Network::start(&["--no-worker"]);
    net.start_worker("bob", "w1");
    let id = net.submit_train(1);
    // Once bob reported, the owner (who may write her repository) moves the unit branch on; the
    // validation still publishes what was evaluated and the job still ends.
    let job = net.wait_job(id, "the training report", Duration::from_secs(180), |j| !units_of(j, "eval", true).is_empty());
    let trained = &units_of(&job, "train", false)[0]["assignments"][0];
    let branch = format!("job-{id}-a{}", trained["id"]);
    let reported = trained["output"]["model_commit"].as_str().unwrap().to_string();
    let push = commit_file(&net, &net.hub.token, "alice/keras-mnist-mlp-mnist", &branch, "Move the branch on", "later.txt", b"later");
    assert!(push.status().is_success(), "{}", push.text().unwrap());
    net.start_worker("carol", "w2");
    let job = net.wait_done(id);
    let history = net.api("/api/models/alice/keras-mnist-mlp-mnist/commits/main");
    assert_eq!(history[1]["id"], reported.as_str(), "published on the evaluated commit: {history:#}");
    assert_eq!(job["refunded"].as_i64().unwrap() + job["paid"].as_i64().unwrap(), job["escrow"].as_i64().unwrap(), "the escrow is settled");
    net.audit_ledger();
}

#[test]
fn a_lease_token_reads_nothing_private_and_dies_with_its_assignment() {
    let net = Network::start(&["--no-worker"]);
    let secret = net.tmp.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("plans.txt"), "alice's private plans").unwrap();
    net.cli(&["repo", "create", "secret", "--private"]);
    net.cli(&["upload", "secret", secret.to_str().unwrap()]);

    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "snoop");
    let id = net.submit_train(1);
    let lease = lease_train_unit(&net, &mallory, worker_id);
    let token = lease["upload_token"].as_str().unwrap().to_string();
    let get = |path: &str| net.http.get(format!("{}{path}", net.hub.url())).bearer_auth(&token).send().unwrap();
    // Alice's private repository does not exist for it, on every read path.
    for path in ["/api/models/alice/secret", "/api/models/alice/secret/tree/main", "/alice/secret/resolve/main/plans.txt"] {
        let resp = get(path);
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["x-error-code"], "RepoNotFound", "{path}: the clients raise RepositoryNotFoundError");
    }
    let listed = get("/api/models?author=alice").text().unwrap();
    assert!(listed.contains("alice/keras-mnist-mlp-mnist") && !listed.contains("alice/secret"), "{listed}");
    // It speaks for no account: no balance, no jobs.
    assert_eq!(get("/api/credits").status(), 403);
    assert_eq!(
        net.post("/api/jobs", &token, &json!({"kind": "train", "algorithm": "alice/keras-mnist-mlp", "dataset": "alice/mnist"})).status(),
        403
    );
    // The job's output repository (public) is readable, as it is to anyone.
    assert_eq!(get("/api/models/alice/keras-mnist-mlp-mnist").status(), 200);

    // The lease lapses (no heartbeat): the token dies with it.
    net.wait_job(id, "the lease to lapse", Duration::from_secs(60), |j| {
        units_of(j, "train", false)[0]["assignments"][0]["state"] == "expired"
    });
    assert_eq!(get("/api/whoami-v2").status(), 401, "a lapsed lease's token is dead");

    // A cancelled job's lease token dies at the cancellation.
    let lease = lease_train_unit(&net, &mallory, net.register_raw_worker(&mallory, "snoop2"));
    let token = lease["upload_token"].as_str().unwrap().to_string();
    let whoami = |token: &str| net.http.get(format!("{}/api/whoami-v2", net.hub.url())).bearer_auth(token).send().unwrap().status();
    assert_eq!(whoami(&token), 200);
    net.cli(&["job", "cancel", &id.to_string()]);
    assert_eq!(whoami(&token), 401, "a cancelled unit's token is dead");
    net.audit_ledger();
}

#[test]
fn a_flood_of_heartbeat_epochs_and_logs_is_bounded() {
    let net = Network::start(&["--no-worker"]);
    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "chatty");
    let id = net.submit_train(1);
    let lease = lease_train_unit(&net, &mallory, worker_id);
    let beat = |body: &Value| net.post(&format!("/api/assignments/{}/heartbeat", lease["assignment_id"]), &mallory, body);
    let points = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n).map(|e| json!({"epoch": e, "train_loss": 0.5, "seconds": 1.0})).collect()
    };

    // 40,000 points in one heartbeat: refused before the writer sees it.
    let resp = beat(&json!({"epochs": points(0, 40_000)}));
    assert!(resp.status() == 400 || resp.status() == 413, "{}", resp.status());
    let error: Value = resp.json().unwrap();
    assert!(error["error"].is_string() && error["message"].is_string(), "{error}");
    // Within bounds, beats are merged in linear time and what is kept is capped; a commit of the
    // hub goes through between them.
    for i in 0..12 {
        assert!(beat(&json!({"epochs": points(i * 1000, 1000), "log": vec!["x".repeat(100); 200]})).status().is_success());
        let started = Instant::now();
        let resp =
            commit_file(&net, &net.hub.token, "alice/keras-mnist-mlp-mnist", "main", "meanwhile", "notes.txt", format!("{i}").as_bytes());
        assert!(resp.status().is_success());
        assert!(started.elapsed() < Duration::from_secs(2), "a hub commit waited {:?} behind heartbeats", started.elapsed());
    }
    for _ in 0..40 {
        assert!(beat(&json!({"log": vec!["y"; 200]})).status().is_success());
    }
    let job = net.job(id);
    let kept = units_of(&job, "train", false)[0]["assignments"][0]["epochs"].as_array().unwrap().len();
    assert_eq!(kept, 10_000, "epoch points kept per assignment are capped");
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let page = net.api(&format!("/api/jobs/{id}/logs?after={after}&limit=10000"));
        let page = page["lines"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["id"].as_i64().unwrap();
        lines.extend(page.iter().filter(|l| l["assignment_id"] == lease["assignment_id"]).map(|l| l["line"].as_str().unwrap().to_string()));
    }
    assert_eq!(lines.len(), 10_001, "10,000 lines and one saying the log was truncated");
    assert!(lines.last().unwrap().contains("log truncated at 10000 lines"), "{:?}", lines.last());
}

#[test]
fn deleting_a_jobs_output_repository_fails_the_job_and_returns_the_escrow() {
    let mut net = Network::start(&["--no-worker"]);
    let mallory = net.hub.add_user("mallory");
    let worker_id = net.register_raw_worker(&mallory, "w0");
    let id = net.submit_train(1);
    let lease = lease_train_unit(&net, &mallory, worker_id);
    let token = lease["upload_token"].as_str().unwrap().to_string();
    // Alice deletes the output repository while a lease token names it.
    let resp = net
        .http
        .delete(format!("{}/api/repos/delete", net.hub.url()))
        .bearer_auth(&net.hub.token)
        .json(&json!({"name": "keras-mnist-mlp-mnist", "type": "model"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    assert_eq!(
        net.http.get(format!("{}/api/whoami-v2", net.hub.url())).bearer_auth(&token).send().unwrap().status(),
        401,
        "its lease tokens went with it"
    );
    // The volunteer gives up; the next worker's lease finds no repository to publish into.
    assert!(
        net.post(
            &format!("/api/assignments/{}/report", lease["assignment_id"]),
            &mallory,
            &json!({"status": "error", "error": "cannot upload"})
        )
        .status()
        .is_success()
    );
    net.start_worker("bob", "w1");
    let job = net.wait_job(id, "the job to fail", Duration::from_secs(60), |j| j["state"] == "failed");
    assert!(job["error"].as_str().unwrap().contains("was deleted"), "{job:#}");
    assert_eq!(job["refunded"], job["escrow"], "nothing was paid, everything came back");
    assert_eq!(net.balance(&net.hub.token), 1000);
    net.audit_ledger();
}

#[test]
fn a_dataset_card_cannot_set_the_price_of_a_job() {
    let net = Network::start(&["--no-worker"]);
    // The same MNIST files under cards that lie: one example, and more than an i64 holds.
    let escrow_with_card = |name: &str, card: &str| -> i64 {
        net.publish_mnist(name, card);
        let out = net.cli(&[
            "job",
            "submit",
            "train",
            "--algorithm",
            "alice/keras-mnist-mlp",
            "--dataset",
            &format!("alice/{name}"),
            "--set",
            "training.epochs=1",
            "--output",
            name,
        ]);
        let id: i64 = out.lines().last().unwrap().trim().parse().unwrap();
        let escrow = net.job(id)["escrow"].as_i64().unwrap();
        net.cli(&["job", "cancel", &id.to_string()]);
        escrow
    };
    let card = |train: &str, test: &str| {
        format!(
            "---\ndataset_info:\n  splits:\n  - name: train\n    num_examples: {train}\n  - name: test\n    num_examples: {test}\n---\n# MNIST\n"
        )
    };
    let honest = escrow_with_card("mnist-honest", &card("60000", "10000"));
    let tiny = escrow_with_card("mnist-tiny", &card("1", "1"));
    let huge = escrow_with_card("mnist-huge", &card("9223372036854775807", "9223372036854775807"));
    let none = escrow_with_card("mnist-bare", "# MNIST, no metadata\n");
    assert!(honest > 0, "{honest}");
    assert_eq!((tiny, huge, none), (honest, honest, honest), "the price comes from the data, not the card");
    assert_eq!(net.balance(&net.hub.token), 1000, "every escrow came back");

    // The whole ledger is the operator's to read; each user sees their own account.
    let anonymous = net.http.get(format!("{}/api/ledger", net.hub.url())).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let alice = net.http.get(format!("{}/api/ledger", net.hub.url())).bearer_auth(&net.hub.token).send().unwrap();
    assert_eq!(alice.status(), 403);
    net.audit_ledger();
}
