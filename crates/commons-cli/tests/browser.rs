//! A person's whole path through the web pages, in a real browser: Debian's Chromium, driven
//! over WebDriver by its own ChromeDriver (`.ci/run` installs both), against `commons serve`
//! with its embedded worker. Sign up, sign out and in, make a dataset and upload a CSV, see its
//! rows, publish a recipe, run it on a dataset from its page, watch the job finish, find the
//! model by search with a facet, see its verified result on the leaderboard, like it, ask about it
//! on its Community tab, sign out.
//! axe-core (the npm package, injected into each page) must report no serious or critical
//! violation on the main pages, at desktop and phone width; screenshots go to
//! `target/screenshots/` for people to look at.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::{BIN, Hub, commons};

/// The axe-core release the accessibility checks inject (MPL-2.0, from the npm registry).
const AXE: &str = "axe-core@4.14.1";

fn mnist_dir() -> PathBuf {
    let out = commons(&["data", "fetch", "mnist"]);
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim())
}

/// `axe.min.js`, packed from the npm registry once into `target/axe/`.
fn axe_script() -> String {
    let dir = support::workspace_root().join("target/axe");
    let script = dir.join("package/axe.min.js");
    if !script.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let packed = Command::new("npm").args(["pack", AXE, "--silent"]).current_dir(&dir).output().expect("npm is installed");
        assert!(packed.status.success(), "npm pack {AXE}: {}", String::from_utf8_lossy(&packed.stderr));
        let tarball = String::from_utf8(packed.stdout).unwrap().trim().to_string();
        let untar = Command::new("tar").args(["xzf", &tarball]).current_dir(&dir).status().unwrap();
        assert!(untar.success());
    }
    std::fs::read_to_string(script).unwrap()
}

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = support::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian's chromium-driver; .ci/run installs it)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    // The workspace's crates enable both of rustls's providers, so none is the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chromium = String::from_utf8(Command::new("sh").args(["-c", "command -v chromium"]).output().unwrap().stdout).unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium.trim(), "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]}),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The person at the browser, on one hub.
struct Person {
    client: Client,
    base: String,
    axe: String,
    shots: PathBuf,
}

impl Person {
    async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The path once a navigation away from `before` (a form sent) has happened.
    async fn path_after(&self, before: &str) -> String {
        let start = Instant::now();
        loop {
            let now = self.path().await;
            if now != before {
                return now;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "still on {before}: {}", self.text("body").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
    }

    /// The text of `css`, read again while a navigation replaces the page under it.
    async fn text(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await,
                Err(e) => Err(e),
            };
            match found {
                Ok(text) => return text,
                Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("no {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits for `needle` in the text of `css` (a page loading after a click), and returns it.
    async fn wait_for(&self, css: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{needle:?} never appeared in {css}: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    /// axe-core's violations of impact serious or critical on the current page.
    async fn axe_violations(&self) -> Vec<String> {
        self.client.execute(&self.axe, vec![]).await.expect("axe injected");
        let result = self
            .client
            .execute_async("const done = arguments[arguments.length - 1]; axe.run().then(r => done(r.violations), e => done([{id: 'axe failed: ' + e, impact: 'critical', nodes: []}]));", vec![])
            .await
            .expect("axe ran");
        result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> = v["nodes"].as_array().into_iter().flatten().take(3).map(|n| n["target"].to_string()).collect();
                format!("{} ({}): {}", v["id"], v["impact"], targets.join(" "))
            })
            .collect()
    }

    /// Checks the current page with axe at 1280 and 375 px wide, screenshots it at both, and
    /// checks that nothing makes the phone-width page scroll sideways.
    async fn check(&self, name: &str) {
        for (width, height) in [(1280, 900), (375, 800)] {
            self.client.set_window_size(width, height).await.unwrap();
            let violations = self.axe_violations().await;
            assert!(violations.is_empty(), "{name} at {width} px: {violations:#?}");
            if width == 375 {
                let overflow =
                    self.client.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
                assert!(overflow.as_i64().unwrap_or(0) <= 0, "{name} scrolls sideways at 375 px by {overflow} px");
            }
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("browser-{name}-{width}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    async fn sign_in(&self, name: &str, password: &str) {
        self.open("/login").await;
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click("form.stacked button[type=submit]").await;
        self.wait_for("nav.account", name).await;
    }

    async fn sign_out(&self) {
        self.click("nav.account button").await;
        self.wait_for("nav.account", "Sign in").await;
    }

    /// Creates a repository of `kind` from the "new" page and uploads `files` to it.
    async fn publish(&self, kind: &str, name: &str, files: &[&Path]) -> String {
        self.open(&format!("/new?kind={kind}")).await;
        self.fill("#name", name).await;
        self.click("form.stacked button[type=submit]").await;
        let url = self.path_after(&format!("/new?kind={kind}")).await;
        self.open(&format!("{url}/upload/main")).await;
        let input = self.client.find(Locator::Css("#files")).await.unwrap();
        for file in files {
            input.send_keys(file.to_str().unwrap()).await.unwrap();
        }
        self.click("form.stacked button[type=submit]").await;
        assert_eq!(self.path_after(&format!("{url}/upload/main")).await, format!("{url}/tree/main"), "the upload committed");
        url
    }
}

#[test]
fn a_person_shares_data_runs_a_recipe_and_finds_the_verified_model_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start_with(&tmp.path().join("data"), "alice", &["--signup", "open", "--lease-seconds", "3"]);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("HF_ENDPOINT", hub.url())
            .env("HF_TOKEN", &hub.token)
            .env("HF_HOME", tmp.path().join("alice-hf"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "commons {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Shared already, by someone else: MNIST (from its Debian package), as alice's dataset.
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for entry in std::fs::read_dir(mnist_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), mnist.join(entry.file_name())).unwrap();
    }
    std::fs::write(mnist.join("README.md"), "---\nlicense: cc-by-sa-3.0\ntask_categories: [image-classification]\n---\n# MNIST\n").unwrap();
    cli(&["repo", "create", "mnist", "--type", "dataset"]);
    cli(&["upload", "mnist", mnist.to_str().unwrap(), "--type", "dataset"]);

    // What the person uploads: a CSV of MNIST's first test labels, and the Keras MLP recipe.
    let labels = std::fs::read(mnist_dir().join("t10k-labels-idx1-ubyte")).unwrap();
    let mut csv = String::from("index,label\n");
    for (i, label) in labels[8..208].iter().enumerate() {
        csv.push_str(&format!("{i},{label}\n"));
    }
    let csv_path = tmp.path().join("labels.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    let recipe_path = tmp.path().join("recipe.toml");
    std::fs::copy(support::workspace_root().join("crates/commons-recipe/recipes/keras-mnist-mlp.toml"), &recipe_path).unwrap();

    // A digit the person saved as a PNG, to try the trained model on.
    let digit = tmp.path().join("digit.png");
    let test_images = commons_data::idx::read_images(&mnist_dir().join("t10k-images-idx3-ubyte")).unwrap();
    let digit_label = commons_data::idx::read_labels(&mnist_dir().join("t10k-labels-idx1-ubyte")).unwrap()[0];
    support::mnist_png(&test_images, 0, 1, &digit);
    let shots = support::workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (csv_link, job_page) = runtime.block_on(async {
        let client = browser(&driver).await;
        let me = Person { client, base: hub.url(), axe: axe_script(), shots };

        // Sign up, out, and in again.
        me.open("/").await;
        me.check("home").await;
        me.open("/join").await;
        me.check("join").await;
        me.fill("#name", "carol").await;
        me.fill("#password", "correct horse battery").await;
        me.click("form.stacked button[type=submit]").await;
        me.wait_for("nav.account", "carol").await;
        assert_eq!(me.path().await, "/");
        me.sign_out().await;
        me.sign_in("carol", "correct horse battery").await;
        let cookies = me.client.get_all_cookies().await.unwrap();
        let session = cookies.iter().find(|c| c.name() == "commons_session").expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(session.same_site().map(|s| s.to_string()).as_deref(), Some("Lax"));
        let script_sees = me.client.execute("return document.cookie;", vec![]).await.unwrap();
        assert!(!script_sees.as_str().unwrap_or_default().contains("commons_session"), "a script cannot read the session");

        // A dataset with a CSV, and its rows in the viewer.
        let dataset = me.publish("dataset", "labels", &[&csv_path]).await;
        assert_eq!(dataset, "/datasets/carol/labels");
        me.open(&format!("{dataset}/viewer")).await;
        let first_row = me.text("table.rows tbody tr").await;
        assert_eq!(
            first_row.split_whitespace().collect::<Vec<_>>(),
            ["0", "0", labels[8].to_string().as_str()],
            "row 0: index 0, MNIST's first test label"
        );
        assert!(me.body().await.contains("Rows 1–50 of 200"));
        me.click("a[rel=next]").await;
        me.wait_for("body", "Rows 51–100 of 200").await;
        me.check("viewer").await;

        // A recipe, run on MNIST from its page.
        let algorithm = me.publish("algorithm", "mnist-mlp", &[&recipe_path]).await;
        me.open(&algorithm).await;
        assert!(me.text("section.recipe").await.contains("keras-mnist-mlp"));
        me.check("algorithm").await;
        me.fill("#run-dataset", "alice/mnist").await;
        me.fill("#run-training-epochs", "1").await;
        me.click("section.run button[type=submit]").await;
        let job_page = me.path_after(&algorithm).await;
        assert!(job_page.starts_with("/jobs/"), "{job_page}");
        me.check("job-running").await;

        // Watched to the end: the page updates itself (live.js) while the job runs.
        let start = Instant::now();
        loop {
            let state = me.text("h1 .state").await;
            if state == "DONE" || state == "done" {
                break;
            }
            assert!(!["failed", "cancelled"].contains(&state.to_lowercase().as_str()), "the job {state}: {}", me.body().await);
            assert!(start.elapsed() < Duration::from_secs(600), "the job did not finish: {}", me.body().await);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        assert_eq!(me.path().await, job_page, "the page updated in place, not by navigation");
        let result = me.text("section[aria-label=Result]").await;
        assert!(result.contains("carol/mnist-mlp-mnist") && result.contains("accuracy"), "{result}");
        assert!(me.client.find(Locator::Css(".curve svg polyline")).await.is_ok(), "the training curve is drawn");
        me.check("job-done").await;

        // Found by search with a facet, and on the leaderboard, verified.
        me.open("/models?search=mnist-mlp&pipeline_tag=image-classification").await;
        assert!(me.text("ul.repos").await.contains("carol/mnist-mlp-mnist"), "{}", me.body().await);
        me.check("search").await;
        me.open("/leaderboards/alice/mnist?split=test&metric=accuracy").await;
        let board = me.text("table").await;
        assert!(board.contains("carol/mnist-mlp-mnist") && board.contains("carol/mnist-mlp"), "{board}");
        me.check("leaderboard").await;
        let csv_link = me.client.find(Locator::LinkText("Download as CSV")).await.unwrap().attr("href").await.unwrap().unwrap();

        // Liked, then signed out.
        me.open("/carol/mnist-mlp-mnist").await;
        let drawn = me
            .client
            .execute("return [...document.querySelectorAll('article.card img')].every(i => i.complete && i.naturalWidth > 0);", vec![])
            .await
            .unwrap();
        assert_eq!(drawn, json!(true), "the card's images (its training curves, an SVG of the repository) are drawn");
        let sidebar = me.text("aside.sidebar").await;
        assert!(
            sidebar.contains("accuracy 0.9") && sidebar.contains("on alice/mnist (test)") && sidebar.contains("carol/mnist-mlp"),
            "{sidebar}"
        );
        me.check("model").await;
        me.click("form[action$='/like'] button").await;
        me.wait_for("form[action$='/like'] button", "Liked · 1").await;
        // Tried on a digit of their own, from the model's page.
        me.client.find(Locator::Css("#try-image")).await.unwrap().send_keys(digit.to_str().unwrap()).await.unwrap();
        me.click("form[action$='/try'] button").await;
        let classes = me.wait_for("table.classes", "%").await;
        let first = classes.lines().find(|l| l.contains('%')).unwrap_or_default().to_string();
        assert!(first.starts_with(&format!("{digit_label} ")), "the digit's class is the likeliest: {classes}");
        me.check("try").await;
        // A question about the model, asked on its Community tab.
        me.open("/carol/mnist-mlp-mnist/discussions/new").await;
        me.fill("#title", "Which seed was this trained with?").await;
        me.fill("#description", "Asking to **reproduce** it.").await;
        me.click("form[action$='/discussions'] button").await;
        me.wait_for("h2.discussion-title", "Which seed").await;
        assert!(me.text("article.comment .card strong").await.contains("reproduce"), "the description is rendered as Markdown");
        me.check("discussion").await;
        me.open("/carol/mnist-mlp-mnist/discussions").await;
        assert!(me.text("ol.discussions").await.contains("Which seed was this trained with?"));
        me.check("discussions").await;
        me.open("/settings/tokens").await;
        me.check("tokens").await;
        me.open("/settings/profile").await;
        me.check("profile").await;
        // An organization, founded from the browser, with carol its admin.
        me.open("/organizations/new").await;
        me.check("organization-new").await;
        me.fill("#org-name", "carols-lab").await;
        me.fill("#org-fullname", "Carol's Lab").await;
        me.click("form[action='/organizations/new'] button").await;
        me.wait_for("h1", "Carol's Lab").await;
        assert_eq!(me.path().await, "/carols-lab");
        assert!(me.text("ul.members").await.contains("carol"));
        me.check("organization").await;
        me.open("/workers").await;
        assert!(me.text("table").await.contains("embedded"));
        me.check("workers").await;
        me.open("/credits").await;
        me.check("credits").await;
        me.sign_out().await;
        me.open("/login").await;
        me.check("login").await;
        me.client.close().await.unwrap();
        (csv_link, job_page)
    });
    let exported = reqwest::blocking::get(format!("{}{csv_link}", hub.url())).unwrap().text().unwrap();
    assert!(exported.lines().nth(1).is_some_and(|l| l.contains("carol/mnist-mlp-mnist")), "{exported}");
    let json: Value = reqwest::blocking::get(format!("{}/api/models/carol/mnist-mlp-mnist", hub.url())).unwrap().json().unwrap();
    assert_eq!(json["likes"], 1, "{json}");

    // A job shows the repositories it ran on: once alice makes her dataset private, carol's job
    // on it is hidden from everyone who may not read it (and still alice's to see).
    let id: i64 = job_page.trim_start_matches("/jobs/").parse().unwrap();
    let http = reqwest::blocking::Client::new();
    let status = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", hub.url())).header("accept", "text/html");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(status(&format!("/api/jobs/{id}"), None), 200, "public inputs: anyone sees the job");
    let private = http
        .put(format!("{}/api/datasets/alice/mnist/settings", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"private": true}))
        .send()
        .unwrap();
    assert!(private.status().is_success());
    for path in [format!("/api/jobs/{id}"), format!("/api/jobs/{id}/logs"), format!("/jobs/{id}")] {
        assert_eq!(status(&path, None), 404, "{path}");
    }
    let listed: Value = http.get(format!("{}/api/jobs", hub.url())).send().unwrap().json().unwrap();
    assert!(listed.as_array().unwrap().iter().all(|j| j["id"] != id), "{listed}");
    assert_eq!(status(&format!("/api/jobs/{id}"), Some(&hub.token)), 200, "alice reads her dataset, so the job");
}
