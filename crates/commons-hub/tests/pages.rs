//! The web pages, read as a browser reads them (over HTTP, asking for HTML): the home page,
//! listings with search and facets, a repository's card, its files, one file; a hostile README
//! renders inert; a private repository's pages are a 404 to others.

mod support;

use base64::Engine;
use serde_json::json;
use support::{Hub, RawClient};

const CARD: &str = "---
license: mit
pipeline_tag: image-classification
library_name: commons
datasets: [alice/digits]
tags: [mnist]
---
# A small CNN

Trained on **MNIST**. ![loss](plots/loss.png)

<script>alert('card')</script>
<img src=\"x\" onerror=\"alert('img')\">

[click me](javascript:alert('link'))

<a href=\"javascript:alert('raw')\">raw link</a>
";

fn file_line(path: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(bytes), "encoding": "base64"}})
}

struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Browser {
    /// The page at `path`: its status and its HTML.
    fn page(&self, path: &str) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base)).header("accept", "text/html,application/xhtml+xml");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let html = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("text/html");
        assert!(html, "{path} answers HTML");
        (status, response.text().unwrap())
    }

    fn ok(&self, path: &str) -> String {
        let (status, html) = self.page(path);
        assert_eq!(status, 200, "{path}: {html}");
        html
    }
}

#[test]
fn a_person_browses_repositories_their_cards_and_files_and_a_hostile_card_is_inert() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("cnn").unwrap().status().is_success());
    assert!(client.create_model("secret-model").unwrap().status().is_success());
    let http = reqwest::blocking::Client::new();
    let settings = http
        .put(format!("{}/api/models/alice/secret-model/settings", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"private": true}))
        .send()
        .unwrap();
    assert!(settings.status().is_success(), "{}", settings.text().unwrap());
    client
        .commit(
            "alice/cnn",
            &[
                json!({"key": "header", "value": {"summary": "card and files"}}),
                file_line("README.md", CARD.as_bytes()),
                file_line("sub/dir/notes.txt", b"<b>not bold</b> and a line\n"),
                file_line("weights.bin", &[0, 159, 146, 150, 255, 0, 1]),
            ],
        )
        .unwrap();
    let anonymous = Browser { http: http.clone(), base: hub.url(), token: None };
    let alice = Browser { http: http.clone(), base: hub.url(), token: Some(hub.token.clone()) };

    // Home: what is public, newest first; the private one only for its owner.
    let home = anonymous.ok("/");
    assert!(home.contains("href=\"/alice/cnn\""), "{home}");
    assert!(!home.contains("secret-model"), "a private repository is not listed to others");
    assert!(alice.ok("/").contains("secret-model"), "its owner sees it");

    // The stylesheet is served under its content hash, cached for good; another name is a 404.
    let css = home.split("href=\"/static/").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_string();
    let sheet = http.get(format!("{}/static/{css}", hub.url())).send().unwrap();
    assert_eq!(sheet.status(), 200);
    assert_eq!(sheet.headers()["content-type"], "text/css; charset=utf-8");
    assert!(sheet.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(anonymous.page("/static/style.0000.css").0, 404);

    // The card: rendered, its front matter in the sidebar, its relative image under the
    // repository's files, and nothing of its script survives.
    let card = anonymous.ok("/alice/cnn");
    assert!(card.contains("<h1>A small CNN</h1>") && card.contains("<strong>MNIST</strong>"), "{card}");
    assert!(card.contains("<a rel=\"noopener noreferrer nofollow\">click me</a>"), "a javascript: link loses its target: {card}");
    assert!(card.contains("src=\"/alice/cnn/resolve/main/plots/loss.png\""), "{card}");
    for bad in ["<script", "onerror=", "href=\"javascript", "src=\"javascript"] {
        assert!(!card.contains(bad), "{bad} reached the page: {card}");
    }
    assert!(card.contains("href=\"/datasets/alice/digits\""), "datasets are linked");
    assert!(card.contains("href=\"/models?pipeline_tag=image-classification\""), "the task links to its listing");
    assert!(card.contains("<dd>mit</dd>"), "the licence");
    assert!(
        card.contains("snapshot_download(&quot;alice/cnn&quot;)") || card.contains("snapshot_download(\"alice/cnn\")"),
        "how to download"
    );

    let headers = http.get(format!("{}/alice/cnn", hub.url())).send().unwrap().headers().clone();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "pages run only the hub's own script: {policy}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // Private: a 404 page to others, the page to its owner.
    let (status, hidden) = anonymous.page("/alice/secret-model");
    assert_eq!(status, 404, "{hidden}");
    let (_, missing) = anonymous.page("/alice/no-such-model");
    assert_eq!(hidden.replace("secret-model", "X"), missing.replace("no-such-model", "X"), "private looks exactly like missing");
    assert_eq!(anonymous.page("/alice/secret-model/tree/main").0, 404);
    assert!(alice.ok("/alice/secret-model").contains("private"));

    // Listings: search, facets, sorts; bad parameters are a 400 page.
    assert!(anonymous.ok("/models?search=cnn").contains("href=\"/alice/cnn\""));
    assert!(!anonymous.ok("/models?search=zebra").contains("href=\"/alice/cnn\""));
    assert!(anonymous.ok("/models?pipeline_tag=image-classification&sort=downloads").contains("href=\"/alice/cnn\""));
    assert!(anonymous.ok("/models?license=mit&library=commons").contains("href=\"/alice/cnn\""));
    assert!(!anonymous.ok("/models?license=apache-2.0").contains("href=\"/alice/cnn\""));
    assert!(!anonymous.ok("/datasets").contains("href=\"/alice/cnn\""), "a model is not a dataset");
    assert_eq!(anonymous.page("/models?sort=sideways").0, 400);
    assert_eq!(anonymous.page("/models?p=x").0, 400);

    // Files: folders and files at a revision, one text file escaped, a binary one not shown.
    let root = anonymous.ok("/alice/cnn/tree/main");
    assert!(root.contains("href=\"/alice/cnn/tree/main/sub\"") && root.contains("href=\"/alice/cnn/blob/main/README.md\""), "{root}");
    assert!(root.contains("href=\"/alice/cnn/resolve/main/weights.bin?download=true\""), "{root}");
    let folder = anonymous.ok("/alice/cnn/tree/main/sub/dir");
    assert!(folder.contains("href=\"/alice/cnn/blob/main/sub/dir/notes.txt\""), "{folder}");
    let notes = anonymous.ok("/alice/cnn/blob/main/sub/dir/notes.txt");
    assert!(notes.contains("&lt;b&gt;not bold&lt;/b&gt;"), "text is shown escaped: {notes}");
    assert!(anonymous.ok("/alice/cnn/blob/main/weights.bin").contains("binary"));
    assert_eq!(anonymous.page("/alice/cnn/blob/main/nope.txt").0, 404);
    assert_eq!(anonymous.page("/alice/cnn/tree/no-such-branch").0, 404);
    assert_eq!(anonymous.page("/alice/cnn/tree/main/no/such/folder").0, 404);

    // History: commits newest first, each linked to its page; a commit's page lists what it
    // changed with a line diff of text files, escaped.
    let second = client
        .commit(
            "alice/cnn",
            &[
                json!({"key": "header", "value": {"summary": "Sharper <notes>", "description": "Why: clarity."}}),
                file_line("sub/dir/notes.txt", b"<b>not bold</b> and a changed line\n"),
                json!({"key": "deletedFile", "value": {"path": "weights.bin"}}),
            ],
        )
        .unwrap();
    let history = anonymous.ok("/alice/cnn/commits/main");
    let (newest, older) = (history.find("Sharper &lt;notes&gt;").unwrap(), history.find("card and files").unwrap());
    assert!(newest < older, "newest first: {history}");
    assert!(history.contains(&format!("href=\"/alice/cnn/commit/{second}\"")), "{history}");
    let page = anonymous.ok(&format!("/alice/cnn/commit/{second}"));
    assert!(page.contains("Why: clarity.") && page.contains("2 files changed"), "{page}");
    assert!(page.contains("<span class=\"del\">-&lt;b&gt;not bold&lt;/b&gt; and a line</span>"), "{page}");
    assert!(page.contains("<span class=\"add\">+&lt;b&gt;not bold&lt;/b&gt; and a changed line</span>"), "{page}");
    assert!(page.contains(">removed</span> <a href=\"/alice/cnn/blob/"), "the deleted file: {page}");
    assert_eq!(anonymous.page(&format!("/alice/cnn/commit/{}", "0".repeat(40))).0, 404);
    assert_eq!(anonymous.page("/alice/cnn/commits/no-such-branch").0, 404);

    // An unknown page is an HTML 404 for a browser; the API keeps its JSON.
    assert_eq!(anonymous.page("/no/such/page/at/all").0, 404);
    let api = http.get(format!("{}/no/such/page/at/all", hub.url())).send().unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.json::<serde_json::Value>().unwrap()["code"], "NotFound");
    let info: serde_json::Value = http.get(format!("{}/api/models/alice/cnn", hub.url())).send().unwrap().json().unwrap();
    assert_eq!(info["cardData"]["license"], "mit", "the API beside the pages is unchanged");
    let raw = http.get(format!("{}/alice/cnn/resolve/main/README.md", hub.url())).send().unwrap().text().unwrap();
    assert_eq!(raw, CARD, "and so are downloads");

    // How the pages look, for people to see: headless Chromium screenshots under
    // target/screenshots, at a desktop's width and a phone's.
    let shots = support::workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let commit_page = format!("/alice/cnn/commit/{second}");
    for (name, path) in [
        ("home", "/"),
        ("models", "/models?search=cnn"),
        ("card", "/alice/cnn"),
        ("files", "/alice/cnn/tree/main"),
        ("commit", commit_page.as_str()),
    ] {
        for width in [1280, 375] {
            let file = shots.join(format!("{name}-{width}.png"));
            screenshot(&format!("{}{path}", hub.url()), &file, width);
            let png = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).read_info().unwrap();
            assert_eq!(png.info().width, width, "{name} at {width} px");
        }
    }
}

/// A screenshot of `url` by the system's Chromium (`.ci/run` installs it).
fn screenshot(url: &str, file: &std::path::Path, width: u32) {
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(file);
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},900"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .expect("chromium is installed (Debian's `chromium`; .ci/run installs it)");
    assert!(file.exists(), "chromium made no screenshot of {url}: {}", String::from_utf8_lossy(&out.stderr));
}
