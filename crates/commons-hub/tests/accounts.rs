//! Browser accounts over HTTP, as a browser speaks it (cookies, forms, redirects): sign up, sign
//! in and out, sessions in HttpOnly SameSite cookies, CSRF tokens on every form, writing from the
//! browser (create, upload, edit the card, delete, like), tokens made and revoked in settings,
//! sign-in limits — and the API, which never takes the cookie.

mod support;

use std::collections::HashMap;

use reqwest::blocking::multipart;
use support::Hub;

/// A browser without script: a cookie jar, forms, no automatic redirects (the test follows them
/// where a person would and asserts where they lead).
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` seen, whole, to check its attributes.
    set_cookies: Vec<String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(hub: &Hub) -> Self {
        let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: hub.url(), cookies: HashMap::new(), set_cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn take(&mut self, response: reqwest::blocking::Response) -> Answer {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap().to_string();
            let (pair, _) = value.split_once(';').unwrap_or((&value, ""));
            let (name, v) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), v.to_string());
            }
            self.set_cookies.push(value);
        }
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Answer { status, location, body: response.text().unwrap() }
    }

    fn get(&mut self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .unwrap();
        self.take(response)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .unwrap();
        self.take(response)
    }

    fn post_multipart(&mut self, path: &str, form: multipart::Form) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .multipart(form)
            .send()
            .unwrap();
        self.take(response)
    }
}

/// The value of the hidden input `name` of a page's first form that has one.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} field in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

fn api_status(hub: &Hub, method: reqwest::Method, path: &str, cookie: Option<&str>, bearer: Option<&str>) -> u16 {
    let mut request = reqwest::blocking::Client::new().request(method, format!("{}{path}", hub.url()));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().unwrap().status().as_u16()
}

#[test]
fn a_person_signs_up_writes_from_the_browser_makes_a_token_and_signs_out() {
    let hub = Hub::start_with(|state| state.with_signup(commons_hub::Signup::Open));
    let mut browser = Browser::new(&hub);

    // Sign up: the form sets a pre-session cookie its token is derived from.
    let join = browser.get("/join");
    assert_eq!(join.status, 200);
    let csrf = hidden(&join.body, "csrf");
    assert!(browser.cookies.contains_key("commons_csrf"));
    let forged = browser.post("/join", &[("name", "bob"), ("password", "a long password")]);
    assert_eq!(forged.status, 403, "a sign-up without its CSRF token is refused");
    let short = browser.post("/join", &[("csrf", &csrf), ("name", "bob"), ("password", "short")]);
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 8 characters"), "{}", short.body);
    let reserved = browser.post("/join", &[("csrf", &csrf), ("name", "settings"), ("password", "a long password")]);
    assert!(reserved.body.contains("reserved"), "{}", reserved.body);
    let taken = browser.post("/join", &[("csrf", &csrf), ("name", "alice"), ("password", "a long password")]);
    assert!(taken.body.contains("taken"), "{}", taken.body);
    let joined = browser.post("/join", &[("csrf", &csrf), ("name", "bob"), ("fullname", "Bob B"), ("password", "a long password")]);
    assert_eq!(joined.status, 303, "{}", joined.body);
    let session_cookie = browser.set_cookies.iter().find(|c| c.starts_with("commons_session=")).expect("a session cookie").clone();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie} lacks {attribute}");
    }
    assert!(!session_cookie.contains("Secure"), "plain HTTP on loopback: no Secure flag");
    assert!(!browser.cookies.contains_key("commons_csrf"), "the pre-session cookie is dropped at sign-in");
    let home = browser.get("/");
    assert!(home.body.contains("href=\"/bob\"") && home.body.contains("Sign out"), "{}", home.body);

    // The API takes Bearer tokens only: the session cookie does not make a caller there.
    let session = format!("commons_session={}", browser.cookies["commons_session"]);
    assert_eq!(api_status(&hub, reqwest::Method::GET, "/api/whoami-v2", Some(&session), None), 401);

    // Create a dataset from the browser.
    let new = browser.get("/new?kind=dataset");
    let csrf = hidden(&new.body, "csrf");
    let forged = browser.post("/new", &[("kind", "dataset"), ("name", "reviews")]);
    assert_eq!(forged.status, 403);
    let created = browser.post("/new", &[("csrf", &csrf), ("kind", "dataset"), ("name", "reviews")]);
    assert_eq!((created.status, created.location.as_deref()), (303, Some("/datasets/bob/reviews")), "{}", created.body);
    let again = browser.post("/new", &[("csrf", &csrf), ("kind", "dataset"), ("name", "reviews")]);
    assert_eq!(again.status, 409);

    // Upload a CSV: one commit, visible through the API as the clients see it.
    let form = browser.get("/datasets/bob/reviews/upload/main");
    assert_eq!(form.status, 200, "{}", form.body);
    let (csrf, parent) = (hidden(&form.body, "csrf"), hidden(&form.body, "parent"));
    let csv = "text,label\ngreat film,1\nawful,0\n";
    let upload = |csrf: &str, parent: &str| {
        multipart::Form::new()
            .text("csrf", csrf.to_string())
            .text("parent", parent.to_string())
            .text("folder", "data")
            .text("summary", "")
            .part("files", multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("train.csv"))
    };
    let no_token = multipart::Form::new()
        .text("parent", parent.clone())
        .part("files", multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("train.csv"));
    assert_eq!(browser.post_multipart("/datasets/bob/reviews/upload/main", no_token).status, 403);
    let uploaded = browser.post_multipart("/datasets/bob/reviews/upload/main", upload(&csrf, &parent));
    assert_eq!(uploaded.status, 303, "{}", uploaded.body);
    let stale = browser.post_multipart("/datasets/bob/reviews/upload/main", upload(&csrf, &parent));
    assert_eq!(stale.status, 412, "an upload based on a head that moved is refused: {}", stale.body);
    // Files larger than a form field's usual limit: 3 MB of bytes, stored through LFS.
    let form = browser.get("/datasets/bob/reviews/upload/main");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let large = multipart::Form::new()
        .text("csrf", hidden(&form.body, "csrf"))
        .text("parent", hidden(&form.body, "parent"))
        .part("files", multipart::Part::bytes(big.clone()).file_name("weights.bin"));
    let uploaded = browser.post_multipart("/datasets/bob/reviews/upload/main", large);
    assert_eq!(uploaded.status, 303, "{}", uploaded.body);
    let back = reqwest::blocking::get(format!("{}/datasets/bob/reviews/resolve/main/weights.bin", hub.url())).unwrap().bytes().unwrap();
    assert!(back.as_ref() == big.as_slice(), "the large file reads back whole");
    // A form field is read up to its bound, not whole: a summary announced as part of a 1 GiB
    // body is refused after its first bytes, while the rest has not been sent.
    {
        use std::io::{Read, Write};
        let form = browser.get("/datasets/bob/reviews/upload/main");
        let (csrf, parent) = (hidden(&form.body, "csrf"), hidden(&form.body, "parent"));
        let address = hub.url().trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let b = "field-bound";
        let head = format!(
            "--{b}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{b}\r\ncontent-disposition: form-data; name=\"parent\"\r\n\r\n{parent}\r\n--{b}\r\ncontent-disposition: form-data; name=\"summary\"\r\n\r\n"
        );
        write!(
            stream,
            "POST /datasets/bob/reviews/upload/main HTTP/1.1\r\nHost: {address}\r\naccept: text/html\r\ncookie: {}\r\ncontent-type: multipart/form-data; boundary={b}\r\ncontent-length: {}\r\n\r\n{head}",
            browser.cookie_header(),
            1u64 << 30
        )
        .unwrap();
        for _ in 0..16 {
            if stream.write_all(&[b'a'; 65_536]).is_err() {
                break;
            }
        }
        let mut answer = [0u8; 4096];
        let n = stream.read(&mut answer).expect("an answer before the body is sent");
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let bearer = hub.add_token("bob", "read");
    let files: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/datasets/bob/reviews/tree/main/data", hub.url()))
        .bearer_auth(&bearer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(files[0]["path"], "data/train.csv", "{files}");
    assert_eq!(files[0]["size"], csv.len());
    // Its rows in the viewer, and a preview on the dataset's page.
    let viewer = browser.get("/datasets/bob/reviews/viewer");
    assert_eq!(viewer.status, 200, "{}", viewer.body);
    assert!(viewer.body.contains("<td>great film</td>") && viewer.body.contains("Rows 1–2 of 2"), "{}", viewer.body);
    assert!(viewer.body.contains("aria-label=\"Distribution of label\""), "a histogram per column: {}", viewer.body);
    let card_page = browser.get("/datasets/bob/reviews");
    assert!(card_page.body.contains("<td>awful</td>") && card_page.body.contains("Open the viewer"), "{}", card_page.body);
    assert_eq!(browser.get("/datasets/bob/reviews/viewer/default/nope").status, 404);
    let history = browser.get("/datasets/bob/reviews/commits/main");
    assert!(history.body.contains("Upload data/train.csv"), "{}", history.body);

    // Edit the card: a card whose YAML does not parse comes back with the error and the text.
    let edit = browser.get("/datasets/bob/reviews/edit/main/README.md");
    assert_eq!(edit.status, 200, "{}", edit.body);
    let (csrf, parent) = (hidden(&edit.body, "csrf"), hidden(&edit.body, "parent"));
    let broken = browser.post(
        "/datasets/bob/reviews/edit/main/README.md",
        &[("csrf", &csrf), ("parent", &parent), ("content", "---\r\nlicense: [mit\r\n---\r\n# Reviews\r\n")],
    );
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert!(broken.body.contains("line") && broken.body.contains("license: [mit"), "{}", broken.body);
    let card = "---\r\nlicense: cc-by-4.0\r\ntask_categories: [text-classification]\r\n---\r\n# Reviews\r\n\r\nTwo film reviews.\r\n";
    let saved = browser.post("/datasets/bob/reviews/edit/main/README.md", &[("csrf", &csrf), ("parent", &parent), ("content", card)]);
    assert_eq!((saved.status, saved.location.as_deref()), (303, Some("/datasets/bob/reviews")), "{}", saved.body);
    let page = browser.get("/datasets/bob/reviews");
    assert!(page.body.contains("<h1>Reviews</h1>") && page.body.contains("cc-by-4.0"), "{}", page.body);
    let served = reqwest::blocking::get(format!("{}/datasets/bob/reviews/resolve/main/README.md", hub.url())).unwrap();
    let header = |name: &str| served.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(header("content-type"), "application/octet-stream");
    assert!(header("content-security-policy").contains("sandbox") && header("x-content-type-options") == "nosniff");
    let readme = served.text().unwrap();
    assert!(readme.starts_with("---\nlicense: cc-by-4.0\n") && !readme.contains('\r'), "lines end as typed: {readme:?}");

    // Like it, then not.
    let csrf = hidden(&page.body, "csrf");
    assert!(page.body.contains("♡ Like · 0"), "{}", page.body);
    assert_eq!(browser.post("/datasets/bob/reviews/like", &[("csrf", &csrf), ("action", "like")]).status, 303);
    let page = browser.get("/datasets/bob/reviews");
    assert!(page.body.contains("♥ Liked · 1"), "{}", page.body);
    assert!(browser.post("/datasets/bob/reviews/like", &[("action", "unlike")]).status == 403);
    assert_eq!(browser.post("/datasets/bob/reviews/like", &[("csrf", &csrf), ("action", "unlike")]).status, 303);
    assert!(browser.get("/datasets/bob/reviews").body.contains("♡ Like · 0"));

    // Delete the file.
    let blob = browser.get("/datasets/bob/reviews/blob/main/data/train.csv");
    assert!(blob.body.contains("great film"), "{}", blob.body);
    let (csrf, commit) = (hidden(&blob.body, "csrf"), hidden(&blob.body, "parent"));
    let deleted = browser.post("/datasets/bob/reviews/delete/main/data/train.csv", &[("csrf", &csrf), ("parent", &commit)]);
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(browser.get("/datasets/bob/reviews/blob/main/data/train.csv").status, 404);

    // Someone else (signed out) is offered no writing, and cannot write.
    let mut stranger = Browser::new(&hub);
    let card_page = stranger.get("/datasets/bob/reviews");
    assert!(!card_page.body.contains("Edit card") && !card_page.body.contains("♡ Like"), "{}", card_page.body);
    let to_sign_in = stranger.get("/datasets/bob/reviews/upload/main");
    assert_eq!(to_sign_in.location.as_deref(), Some("/login?next=%2Fdatasets%2Fbob%2Freviews%2Fupload%2Fmain"));
    let alice = hub.token.clone();
    let mut alice_browser = Browser::new(&hub);
    let (status, _) = {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/datasets/bob/reviews/upload/main", hub.url()))
            .header("accept", "text/html")
            .bearer_auth(&alice)
            .send()
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 403, "another account may not upload to bob's dataset");
    assert_eq!(alice_browser.get("/settings/tokens").location.as_deref(), Some("/login?next=%2Fsettings%2Ftokens"));

    // A token made in settings works on the API until it is revoked.
    let settings = browser.get("/settings/tokens");
    let csrf = hidden(&settings.body, "csrf");
    assert_eq!(browser.post("/settings/tokens", &[("name", "laptop"), ("scope", "write")]).status, 403);
    let made = browser.post("/settings/tokens", &[("csrf", &csrf), ("name", "laptop"), ("scope", "write")]);
    assert_eq!(made.status, 200, "{}", made.body);
    let start = made.body.find("<code id=\"new-token\">").unwrap() + "<code id=\"new-token\">".len();
    let secret = made.body[start..].split('<').next().unwrap().to_string();
    assert!(secret.starts_with("cm_"), "{secret}");
    assert_eq!(api_status(&hub, reqwest::Method::GET, "/api/whoami-v2", None, Some(&secret)), 200);
    // A read token cannot mint itself a write token through the pages.
    let read_only = reqwest::blocking::Client::new()
        .post(format!("{}/settings/tokens", hub.url()))
        .bearer_auth(&bearer)
        .form(&[("name", "escalate"), ("scope", "write")])
        .send()
        .unwrap();
    assert_eq!(read_only.status().as_u16(), 403);
    let listed = browser.get("/settings/tokens");
    let id_marker = "action=\"/settings/tokens/";
    let revoke_paths: Vec<String> = listed
        .body
        .match_indices(id_marker)
        .map(|(i, _)| listed.body[i + "action=\"".len()..].split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(revoke_paths.len(), 2, "the read token and the new one: {}", listed.body);
    for path in &revoke_paths {
        assert_eq!(browser.post(path, &[("csrf", &csrf)]).status, 303);
    }
    assert_eq!(api_status(&hub, reqwest::Method::GET, "/api/whoami-v2", None, Some(&secret)), 401, "revoked at once");
    assert_eq!(browser.post(&revoke_paths[0], &[("csrf", &csrf)]).status, 404);

    // Profile: a full name, and a new password that signs every other browser out.
    let mut laptop = Browser::new(&hub);
    let login = laptop.get("/login");
    let signed_in = laptop.post("/login", &[("csrf", &hidden(&login.body, "csrf")), ("name", "bob"), ("password", "a long password")]);
    assert_eq!(signed_in.status, 303);
    let profile = browser.get("/settings/profile");
    assert_eq!(profile.status, 200, "{}", profile.body);
    let csrf = hidden(&profile.body, "csrf");
    assert_eq!(browser.post("/settings/profile", &[("fullname", "Bob Builder")]).status, 403);
    let saved = browser.post("/settings/profile", &[("csrf", &csrf), ("fullname", "Bob Builder")]);
    assert!(saved.body.contains("Saved."), "{}", saved.body);
    assert!(browser.get("/bob").body.contains("Bob Builder"));
    let wrong = browser.post("/settings/password", &[("csrf", &csrf), ("current", "not my password"), ("password", "a new long password")]);
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("current password is not right"), "{}", wrong.body);
    let changed =
        browser.post("/settings/password", &[("csrf", &csrf), ("current", "a long password"), ("password", "a new long password")]);
    assert_eq!((changed.status, changed.location.as_deref()), (303, Some("/settings/profile")), "{}", changed.body);
    assert!(browser.get("/").body.contains("href=\"/bob\""), "this browser stays signed in");
    assert!(laptop.get("/").body.contains("Sign in"), "every other session ended with the old password");

    // Sign out: the old cookie no longer signs anyone in, even sent again by hand.
    let home = browser.get("/");
    let csrf = hidden(&home.body, "csrf");
    let old_session = browser.cookies["commons_session"].clone();
    assert_eq!(browser.post("/logout", &[("csrf", &csrf)]).status, 303);
    assert!(!browser.cookies.contains_key("commons_session"));
    browser.cookies.insert("commons_session".into(), old_session);
    let home = browser.get("/");
    assert!(home.body.contains("Sign in") && !home.body.contains("href=\"/bob\">bob"), "{}", home.body);

    // Sign in again with the password; a wrong one is refused without saying which part was wrong.
    let mut browser = Browser::new(&hub);
    let login = browser.get("/login?next=/datasets/bob/reviews");
    let csrf = hidden(&login.body, "csrf");
    assert_eq!(hidden(&login.body, "next"), "/datasets/bob/reviews");
    let wrong = browser.post("/login", &[("csrf", &csrf), ("name", "bob"), ("password", "not the password")]);
    assert_eq!(wrong.status, 401);
    let nobody = browser.post("/login", &[("csrf", &csrf), ("name", "nobody"), ("password", "not the password")]);
    assert_eq!(nobody.status, 401);
    assert!(wrong.body.contains("Wrong name or password.") && nobody.body.contains("Wrong name or password."));
    let old = browser.post("/login", &[("csrf", &csrf), ("name", "bob"), ("password", "a long password")]);
    assert_eq!(old.status, 401, "the old password no longer works");
    let offsite =
        browser.post("/login", &[("csrf", &csrf), ("name", "bob"), ("password", "a new long password"), ("next", "//evil.example/")]);
    assert_eq!((offsite.status, offsite.location.as_deref()), (303, Some("/")), "never sent off the site after sign-in");
    assert_eq!(browser.get("/profile-that-does-not-exist").status, 404);
    let profile = browser.get("/bob");
    assert!(profile.body.contains("Bob Builder") && profile.body.contains("/datasets/bob/reviews"), "{}", profile.body);
}

#[test]
fn sign_in_attempts_are_limited_and_closed_sign_up_makes_no_accounts() {
    let hub = Hub::start();
    let mut browser = Browser::new(&hub);
    assert_eq!(browser.get("/join").status, 404, "sign-up is closed by default");
    let login = browser.get("/login");
    assert!(login.body.contains("made by its operator"), "{}", login.body);
    let csrf = hidden(&login.body, "csrf");
    assert_eq!(browser.post("/join", &[("csrf", &csrf), ("name", "mallory"), ("password", "a long password")]).status, 404);
    assert!(hub.block_on(hub.state.db.user_by_name("mallory")).unwrap().is_none());

    // alice has no password (an account made for tokens only): no password signs her in.
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(browser.post("/login", &[("csrf", &csrf), ("name", "alice"), ("password", "guess guess")]).status);
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[10], 429, "the eleventh attempt on one account within minutes waits");
    let waited = browser.post("/login", &[("csrf", &csrf), ("name", "alice"), ("password", "guess guess")]);
    assert!(waited.body.contains("Too many attempts"), "{}", waited.body);
}

/// A browser signed in as `name` (whose password is set here).
fn signed_in(hub: &Hub, name: &str) -> Browser {
    let hash = commons_repo::accounts::hash_password("a long password").unwrap();
    hub.block_on(hub.state.db.set_password(name, &hash)).unwrap();
    let mut browser = Browser::new(hub);
    let csrf = hidden(&browser.get("/login").body, "csrf");
    let answer = browser.post("/login", &[("csrf", &csrf), ("name", name), ("password", "a long password")]);
    assert_eq!(answer.status, 303, "{}", answer.body);
    browser
}

/// A commit through the API as `token`, to `rev` of alice's model `m`; `create_pr` opens a pull
/// request with it. The answer's JSON.
fn api_commit(hub: &Hub, token: &str, rev: &str, create_pr: bool, path: &str, content: &str) -> serde_json::Value {
    use base64::Engine;
    let lines = [
        serde_json::json!({"key": "header", "value": {"summary": format!("Change {path}"), "description": ""}}),
        serde_json::json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(content), "encoding": "base64"}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let query = if create_pr { "?create_pr=1" } else { "" };
    let rev = rev.replace('/', "%2F");
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/models/alice/m/commit/{rev}{query}", hub.url()))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    let status = response.status();
    let value: serde_json::Value = response.json().unwrap();
    assert!(status.is_success(), "commit to {rev}: {status} {value}");
    value
}

#[test]
fn a_pull_request_is_discussed_and_merged_from_its_page_and_only_a_writer_sees_the_merge_button() {
    let hub = Hub::start();
    let bob_token = hub.add_user("bob");
    support::RawClient::new(&hub).create_model("m").unwrap();
    api_commit(&hub, &hub.token, "main", false, "config.json", "{\"hidden\": 64}\n");

    // bob opens a discussion from the page, then proposes a change through the API.
    let mut bob = signed_in(&hub, "bob");
    let form = bob.get("/alice/m/discussions/new");
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = hidden(&form.body, "csrf");
    assert_eq!(bob.post("/alice/m/discussions", &[("title", "No token")]).status, 403, "a form without its CSRF token is refused");
    let short = bob.post("/alice/m/discussions", &[("csrf", &csrf), ("title", "Hi")]);
    assert_eq!(short.status, 400);
    assert!(short.body.contains("3 to 200 characters"), "{}", short.body);
    let opened = bob.post(
        "/alice/m/discussions",
        &[("csrf", &csrf), ("title", "Where is the card?"), ("description", "**Please** add one.\n\n<script>alert(1)</script>")],
    );
    assert_eq!((opened.status, opened.location.as_deref()), (303, Some("/alice/m/discussions/1")), "{}", opened.body);
    let discussion = bob.get("/alice/m/discussions/1");
    assert!(discussion.body.contains("<strong>Please</strong> add one."), "the description is rendered: {}", discussion.body);
    assert!(!discussion.body.contains("<script>alert"), "and sanitised");

    let pr = api_commit(&hub, &bob_token, "main", true, "config.json", "{\"hidden\": 128}\n");
    assert_eq!(pr["pullRequestUrl"].as_str().unwrap(), format!("{}/alice/m/discussions/2", hub.url()));
    let page = bob.get("/alice/m/discussions/2");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("+{&quot;hidden&quot;: 128}") || page.body.contains("+{\"hidden\": 128}"),
        "the diff is shown: {}",
        page.body
    );
    assert!(!page.body.contains("/merge\""), "bob may not merge, so no merge form is shown");
    let csrf = hidden(&page.body, "csrf");
    assert_eq!(bob.post("/alice/m/discussions/2/merge", &[("csrf", &csrf)]).status, 403, "nor may he post one");
    let commented = bob.post("/alice/m/discussions/2/comment", &[("csrf", &csrf), ("comment", "Ready when you are")]);
    assert_eq!(commented.status, 303);

    // The listing shows both, pull requests apart.
    let list = bob.get("/alice/m/discussions?type=pull_request");
    assert!(list.body.contains("Change config.json") && !list.body.contains("Where is the card?"), "{}", list.body);

    // alice merges from the page; main moves, the pull request says merged.
    let mut alice = signed_in(&hub, "alice");
    let page = alice.get("/alice/m/discussions/2");
    assert!(page.body.contains("/alice/m/discussions/2/merge"), "a writer sees the merge form: {}", page.body);
    assert!(page.body.contains("Ready when you are"));
    let csrf = hidden(&page.body, "csrf");
    assert_eq!(alice.post("/alice/m/discussions/2/merge", &[]).status, 403, "a merge without its CSRF token is refused");
    let merged = alice.post("/alice/m/discussions/2/merge", &[("csrf", &csrf)]);
    assert_eq!(merged.status, 303, "{}", merged.body);
    let page = alice.get("/alice/m/discussions/2");
    assert!(page.body.contains("status merged") && page.body.contains("merged as"), "{}", page.body);
    let config = reqwest::blocking::get(format!("{}/alice/m/resolve/main/config.json", hub.url())).unwrap().text().unwrap();
    assert_eq!(config, "{\"hidden\": 128}\n");

    // bob closes his own discussion from its page.
    let page = bob.get("/alice/m/discussions/1");
    let csrf = hidden(&page.body, "csrf");
    assert_eq!(bob.post("/alice/m/discussions/1/status", &[("csrf", &csrf), ("status", "closed")]).status, 303);
    assert!(bob.get("/alice/m/discussions?status=closed").body.contains("Where is the card?"));
}
