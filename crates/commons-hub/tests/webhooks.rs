//! Webhooks: the settings API (`/api/settings/webhooks`) and real deliveries, to a receiver
//! served by the test itself on a loopback port.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{Hub, RawClient};

/// How long a delivery may take to arrive before a test gives up.
const DEADLINE: Duration = Duration::from_secs(15);

/// One post a receiver took.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    secret: Option<String>,
    user_agent: String,
    content_type: String,
    body: Value,
}

/// A webhook target on a loopback port: it keeps what it is sent, and answers 500 on paths
/// under `/fail`.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(hub: &Hub) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let keep = got.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                keep.lock().unwrap().push(Received {
                    path: uri.path().to_string(),
                    secret: header("x-webhook-secret"),
                    user_agent: header("user-agent").unwrap_or_default(),
                    content_type: header("content-type").unwrap_or_default(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                if uri.path().starts_with("/fail") {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "the target is down")
                } else {
                    (axum::http::StatusCode::OK, "thanks")
                }
            }
        });
        let url = hub.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            url
        });
        Receiver { url, got }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// What was posted to `path` so far.
    fn posts(&self, path: &str) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// The first post to `path` that `pred` accepts, waiting up to [`DEADLINE`].
    fn wait_for(&self, path: &str, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        let start = Instant::now();
        loop {
            if let Some(r) = self.posts(path).into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(start.elapsed() < DEADLINE, "no {what} reached {path} in {DEADLINE:?}; got {:#?}", self.posts(path));
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn scope(r: &Received) -> &str {
    r.body["event"]["scope"].as_str().unwrap_or_default()
}

/// The settings API as a client of one token.
struct Api {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(hub: &Hub, token: &str) -> Api {
        Api { base: hub.url(), token: token.to_string(), http: reqwest::blocking::Client::new() }
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}/api/settings/webhooks{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn create(&self, body: Value) -> Value {
        let (status, v) = self.send(reqwest::Method::POST, "", Some(&body));
        assert_eq!(status, 200, "{v}");
        v["webhook"].clone()
    }

    fn get(&self, id: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, &format!("/{id}"), None)
    }

    fn list(&self) -> Vec<Value> {
        let (status, v) = self.send(reqwest::Method::GET, "", None);
        assert_eq!(status, 200, "{v}");
        v.as_array().cloned().expect("a list")
    }

    /// Waits for the webhook's `lastDelivery` to be recorded.
    fn last_delivery(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, v) = self.get(id);
            assert_eq!(status, 200, "{v}");
            if !v["webhook"]["lastDelivery"].is_null() {
                return v["webhook"]["lastDelivery"].clone();
            }
            assert!(start.elapsed() < DEADLINE, "no delivery of {id} was recorded");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn readme(text: &str) -> Vec<Value> {
    let content = base64::engine::general_purpose::STANDARD.encode(text);
    vec![
        json!({"key": "header", "value": {"summary": "Update README", "description": ""}}),
        json!({"key": "file", "value": {"path": "README.md", "content": content, "encoding": "base64"}}),
    ]
}

fn create_repo(client: &RawClient, name: &str, private: bool) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/repos/create", client.base))
        .bearer_auth(&client.token)
        .json(&json!({"name": name, "type": "model", "private": private}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "create {name}");
}

#[test]
fn a_commit_to_a_watched_repository_is_posted_with_its_secret_repository_and_head() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let alice = Api::new(&hub, &hub.token);
    let client = RawClient::new(&hub);
    create_repo(&client, "m", false);
    let hook = alice.create(json!({
        "url": target.at("/hook"),
        "watched": [{"type": "model", "name": "alice/m"}],
        "domains": ["repo"],
        "secret": "s3cret value",
    }));
    assert_eq!(hook["secret"], "s3cret value", "its owner sees the secret, as on the Hub");
    assert_eq!(hook["disabled"], false);
    assert_eq!(hook["domains"], json!(["repo"]));
    assert!(hook["lastDelivery"].is_null());
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);

    let commit = client.commit("alice/m", &readme("# m\n")).unwrap();
    let got = target.wait_for("/hook", "a repo.content event", |r| scope(r) == "repo.content");
    assert_eq!(got.secret.as_deref(), Some("s3cret value"));
    assert!(got.user_agent.starts_with("commons-webhooks/"), "{}", got.user_agent);
    assert_eq!(got.content_type, "application/json");
    let body = &got.body;
    assert_eq!(body["event"]["action"], "update");
    assert_eq!(body["repo"]["type"], "model");
    assert_eq!(body["repo"]["name"], "alice/m");
    assert_eq!(body["repo"]["private"], false);
    assert_eq!(body["repo"]["headSha"], commit);
    // Links lead to the hub as the webhook's owner reached it.
    assert_eq!(body["repo"]["url"]["web"], format!("{}/alice/m", hub.url()));
    assert_eq!(body["repo"]["url"]["api"], format!("{}/api/models/alice/m", hub.url()));
    assert_eq!(body["updatedRefs"][0]["ref"], "refs/heads/main");
    assert_eq!(body["updatedRefs"][0]["newSha"], commit);
    assert_eq!(body["webhook"], json!({"id": id, "version": 3}));
    assert!(body.get("discussion").is_none());

    // The owner sees how it went.
    let last = alice.last_delivery(&id);
    assert_eq!(last["status"], 200, "{last}");
    assert_eq!(last["ok"], true);
    assert_eq!(last["attempts"], 1);
    assert_eq!(last["event"], "repo.content");

    // A branch and a tag are repository changes too.
    let http = reqwest::blocking::Client::new();
    let made = http.post(format!("{}/api/models/alice/m/branch/dev", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(made.status(), 200);
    let got = target.wait_for("/hook", "the new branch", |r| r.body["updatedRefs"][0]["ref"] == "refs/heads/dev");
    assert_eq!(got.body["updatedRefs"][0]["newSha"], commit);
    assert!(got.body["updatedRefs"][0]["oldSha"].is_null());
}

#[test]
fn a_users_repositories_are_watched_from_their_creation_and_other_namespaces_are_not() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let bob = hub.add_user("bob");
    let alice = Api::new(&hub, &hub.token);
    alice.create(json!({"url": target.at("/alice"), "watched": [{"type": "user", "name": "alice"}], "domains": ["repo", "discussion"]}));
    let client = RawClient::new(&hub);
    create_repo(&client, "fresh", false);
    let created = target.wait_for("/alice", "the creation", |r| scope(r) == "repo");
    assert_eq!(created.body["event"]["action"], "create");
    assert_eq!(created.body["repo"]["name"], "alice/fresh");
    assert!(created.secret.is_none(), "no secret, no header");

    // bob's repository is not alice's namespace; alice's next commit shows the queue moved on.
    create_repo(&RawClient::with_token(&hub, &bob), "elsewhere", false);
    client.commit("alice/fresh", &readme("# fresh\n")).unwrap();
    target.wait_for("/alice", "the commit", |r| scope(r) == "repo.content");
    std::thread::sleep(Duration::from_millis(200));
    assert!(target.posts("/alice").iter().all(|r| r.body["repo"]["name"] == "alice/fresh"), "{:#?}", target.posts("/alice"));
}

#[test]
fn a_comment_on_a_discussion_is_posted_to_webhooks_of_the_discussion_domain_only() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let bob = hub.add_user("bob");
    let client = RawClient::new(&hub);
    create_repo(&client, "m", false);
    let alice = Api::new(&hub, &hub.token);
    alice.create(
        json!({"url": target.at("/talk"), "watched": [{"type": "user", "name": "alice"}], "domains": ["discussion"], "secret": "t"}),
    );
    alice.create(json!({"url": target.at("/code"), "watched": [{"type": "model", "name": "alice/m"}], "domains": ["repo"]}));

    let http = reqwest::blocking::Client::new();
    let post = |path: &str, token: &str, body: Value| {
        let resp = http.post(format!("{}/api/models/alice/m/{path}", hub.url())).bearer_auth(token).json(&body).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json::<Value>().unwrap()
    };
    post("discussions", &bob, json!({"title": "A question", "description": "Does it work?"}));
    let opened = target.wait_for("/talk", "the new discussion", |r| scope(r) == "discussion");
    assert_eq!(opened.body["event"]["action"], "create");
    assert_eq!(opened.body["discussion"]["num"], 1);
    assert_eq!(opened.body["discussion"]["title"], "A question");
    assert_eq!(opened.body["discussion"]["isPullRequest"], false);
    assert_eq!(opened.body["discussion"]["status"], "open");
    assert_eq!(opened.body["comment"]["content"], "Does it work?", "the first comment comes with it");

    let said = post("discussions/1/comment", &hub.token, json!({"comment": "It does."}));
    let got = target.wait_for("/talk", "the comment", |r| scope(r) == "discussion.comment");
    assert_eq!(got.secret.as_deref(), Some("t"));
    assert_eq!(got.body["event"]["action"], "create");
    assert_eq!(got.body["repo"]["name"], "alice/m");
    assert_eq!(got.body["discussion"]["num"], 1);
    assert_eq!(got.body["comment"]["content"], "It does.");
    assert_eq!(got.body["comment"]["id"], said["newMessage"]["id"]);
    assert_eq!(got.body["comment"]["author"]["name"], "alice");
    assert!(got.body["comment"]["url"]["web"].as_str().unwrap().contains("/alice/m/discussions/1#"));

    post("discussions/1/status", &bob, json!({"status": "closed"}));
    let closed = target.wait_for("/talk", "the status change", |r| r.body["discussion"]["status"] == "closed");
    assert_eq!(closed.body["event"], json!({"action": "update", "scope": "discussion"}));

    // The repository's own webhook heard none of it.
    client.commit("alice/m", &readme("# m\n")).unwrap();
    target.wait_for("/code", "the commit", |r| scope(r) == "repo.content");
    std::thread::sleep(Duration::from_millis(200));
    assert!(target.posts("/code").iter().all(|r| scope(r).starts_with("repo")), "{:#?}", target.posts("/code"));
    assert!(target.posts("/talk").iter().all(|r| scope(r).starts_with("discussion")), "{:#?}", target.posts("/talk"));
}

#[test]
fn a_disabled_webhook_receives_nothing_until_enabled_again() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let client = RawClient::new(&hub);
    create_repo(&client, "m", false);
    let alice = Api::new(&hub, &hub.token);
    let watched = json!([{"type": "model", "name": "alice/m"}]);
    let quiet = alice.create(json!({"url": target.at("/quiet"), "watched": watched, "domains": ["repo"]}));
    let id = quiet["id"].as_str().unwrap();
    alice.create(json!({"url": target.at("/always"), "watched": watched, "domains": ["repo"]}));
    let (status, v) = alice.send(reqwest::Method::POST, &format!("/{id}/disable"), None);
    assert_eq!((status, &v["webhook"]["disabled"]), (200, &json!(true)));

    let first = client.commit("alice/m", &readme("one\n")).unwrap();
    target.wait_for("/always", "the first commit", |r| r.body["repo"]["headSha"] == first);
    std::thread::sleep(Duration::from_millis(300));
    assert!(target.posts("/quiet").is_empty(), "a disabled webhook got {:#?}", target.posts("/quiet"));
    assert!(alice.get(id).1["webhook"]["lastDelivery"].is_null());

    let (status, v) = alice.send(reqwest::Method::POST, &format!("/{id}/enable"), None);
    assert_eq!((status, &v["webhook"]["disabled"]), (200, &json!(false)));
    let second = client.commit("alice/m", &readme("two\n")).unwrap();
    let got = target.wait_for("/quiet", "the second commit", |r| scope(r) == "repo.content");
    assert_eq!(got.body["repo"]["headSha"], second);
    assert_eq!(target.posts("/quiet").len(), 1, "nothing from while it was disabled");
}

#[test]
fn a_webhook_whose_owner_cannot_read_a_private_repository_hears_nothing_of_it() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let bob = hub.add_user("bob");
    let watched = json!([{"type": "user", "name": "alice"}, {"type": "model", "name": "alice/secret"}]);
    Api::new(&hub, &bob).create(json!({"url": target.at("/bob"), "watched": watched, "domains": ["repo", "discussion"]}));
    Api::new(&hub, &hub.token).create(json!({"url": target.at("/alice"), "watched": watched, "domains": ["repo", "discussion"]}));
    let client = RawClient::new(&hub);
    create_repo(&client, "secret", true);
    let commit = client.commit("alice/secret", &readme("# hidden\n")).unwrap();
    let http = reqwest::blocking::Client::new();
    let opened = http
        .post(format!("{}/api/models/alice/secret/discussions", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"title": "Private notes"}))
        .send()
        .unwrap();
    assert_eq!(opened.status(), 200);
    let got = target.wait_for("/alice", "the private commit", |r| r.body["repo"]["headSha"] == commit);
    assert_eq!(got.body["repo"]["private"], true);
    target.wait_for("/alice", "the private discussion", |r| scope(r) == "discussion");

    // bob hears of a public repository of alice's, and of nothing before it.
    create_repo(&client, "open", false);
    target.wait_for("/bob", "the public repository", |r| r.body["repo"]["name"] == "alice/open");
    std::thread::sleep(Duration::from_millis(300));
    let bobs = target.posts("/bob");
    assert!(bobs.iter().all(|r| r.body["repo"]["name"] == "alice/open"), "bob heard of a private repository: {bobs:#?}");

    // Once public, its changes reach bob too.
    let made_public = http
        .put(format!("{}/api/models/alice/secret/settings", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"private": false}))
        .send()
        .unwrap();
    assert_eq!(made_public.status(), 200);
    let got = target.wait_for("/bob", "the change of visibility", |r| scope(r) == "repo.config");
    assert_eq!(got.body["repo"]["name"], "alice/secret");
    assert_eq!(got.body["updatedConfig"]["private"], false);
}

#[test]
fn another_user_cannot_read_change_or_delete_someones_webhook() {
    let hub = Hub::start();
    let bob_token = hub.add_user("bob");
    let alice = Api::new(&hub, &hub.token);
    let hook = alice.create(json!({"url": "https://example.com/a", "watched": [{"type": "user", "name": "alice"}], "secret": "mine"}));
    let id = hook["id"].as_str().unwrap();
    assert_eq!(hook["domains"], json!(["repo", "discussion"]), "both domains when none are named");

    let bob = Api::new(&hub, &bob_token);
    assert!(bob.list().is_empty(), "bob lists his own webhooks only");
    let change = json!({"url": "https://evil.example/steal", "watched": [], "secret": "theirs"});
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/{id}"), None),
        (reqwest::Method::POST, format!("/{id}"), Some(&change)),
        (reqwest::Method::POST, format!("/{id}/disable"), None),
        (reqwest::Method::POST, format!("/{id}/enable"), None),
        (reqwest::Method::DELETE, format!("/{id}"), None),
    ] {
        let (status, v) = bob.send(method.clone(), &path, body);
        assert_eq!(status, 404, "{method} {path}: {v}");
        assert!(v["error"].is_string(), "the API's JSON error: {v}");
        assert!(!v.to_string().contains("mine"), "{v}");
    }
    let (status, v) = alice.get(id);
    assert_eq!(status, 200);
    assert_eq!(v["webhook"], hook, "alice's webhook is as she left it");

    // Only a write token of the account manages webhooks.
    let read = hub.add_token("alice", "read");
    let worker = hub.add_token("alice", "worker");
    for token in [&read, &worker] {
        let (status, _) = Api::new(&hub, token).send(reqwest::Method::GET, "", None);
        assert_eq!(status, 403);
    }
    let (status, _) = Api::new(&hub, "").send(reqwest::Method::GET, "", None);
    assert_eq!(status, 401);
    let anonymous = reqwest::blocking::get(format!("{}/api/settings/webhooks", hub.url())).unwrap();
    assert_eq!(anonymous.status(), 401);

    // Its owner changes and deletes it.
    let (status, v) = alice.send(reqwest::Method::POST, &format!("/{id}"), Some(&json!({"url": "https://example.com/b", "watched": []})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["webhook"]["url"], "https://example.com/b");
    assert_eq!(v["webhook"]["watched"], hook["watched"], "an empty watched list keeps what it watches");
    assert_eq!(v["webhook"]["secret"], "mine");
    assert_eq!(alice.send(reqwest::Method::DELETE, &format!("/{id}"), None).0, 200);
    assert_eq!(alice.get(id).0, 404);
    assert_eq!(alice.send(reqwest::Method::DELETE, &format!("/{id}"), None).0, 404);
}

#[test]
fn bad_input_is_refused_with_400_and_stores_nothing() {
    let hub = Hub::start();
    let alice = Api::new(&hub, &hub.token);
    let watched = json!([{"type": "user", "name": "alice"}]);
    let many: Value = (0..101).map(|i| json!({"type": "user", "name": format!("u{i}")})).collect();
    let bad = [
        json!({"watched": watched}),
        json!({"url": "ftp://example.com/", "watched": watched}),
        json!({"url": "file:///etc/passwd", "watched": watched}),
        json!({"url": "not a url", "watched": watched}),
        json!({"url": format!("https://example.com/{}", "a".repeat(2048)), "watched": watched}),
        json!({"url": "https://example.com/", "watched": []}),
        json!({"url": "https://example.com/"}),
        json!({"url": "https://example.com/", "watched": many}),
        json!({"url": "https://example.com/", "watched": [{"type": "bucket", "name": "alice"}]}),
        json!({"url": "https://example.com/", "watched": [{"type": "model", "name": "no-namespace"}]}),
        json!({"url": "https://example.com/", "watched": [{"type": "user", "name": "../etc"}]}),
        json!({"url": "https://example.com/", "watched": [{"type": "user"}]}),
        json!({"url": "https://example.com/", "watched": watched, "domains": []}),
        json!({"url": "https://example.com/", "watched": watched, "domains": ["repo", "billing"]}),
        json!({"url": "https://example.com/", "watched": watched, "secret": "s".repeat(201)}),
        json!({"url": "https://example.com/", "watched": watched, "secret": "two\nlines"}),
        json!({"jobSourceId": "abc", "watched": watched}),
        json!(["not", "an", "object"]),
    ];
    for body in &bad {
        let (status, v) = alice.send(reqwest::Method::POST, "", Some(body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let raw = reqwest::blocking::Client::new()
        .post(format!("{}/api/settings/webhooks", hub.url()))
        .bearer_auth(&hub.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert!(raw.headers().contains_key("x-error-code"));
    assert!(alice.list().is_empty(), "nothing was stored");

    // A refused update leaves the webhook as it was.
    let hook = alice.create(json!({"url": "https://example.com/ok", "watched": watched, "domains": ["repo"], "secret": "k"}));
    let id = hook["id"].as_str().unwrap();
    let bad_updates = [
        json!({"url": "ftp://example.com/"}),
        json!({"url": "javascript:alert(1)"}),
        json!({"url": "https://example.com/new", "watched": many}),
        json!({"watched": [{"type": "space", "name": "nonamespace"}]}),
        json!({"domains": []}),
        json!({"domains": ["everything"]}),
        json!({"url": "https://example.com/new", "secret": "s".repeat(201)}),
        json!({"jobSourceId": "abc", "secrets": {"HF_TOKEN": "x"}}),
        json!({"url": 7}),
    ];
    for body in &bad_updates {
        let (status, v) = alice.send(reqwest::Method::POST, &format!("/{id}"), Some(body));
        assert_eq!(status, 400, "update {body}: {v}");
    }
    assert_eq!(alice.get(id).1["webhook"], hook);

    // 25 webhooks per account.
    for i in 1..25 {
        alice.create(json!({"url": format!("https://example.com/{i}"), "watched": watched}));
    }
    let (status, v) = alice.send(reqwest::Method::POST, "", Some(&json!({"url": "https://example.com/26", "watched": watched})));
    assert_eq!(status, 400, "{v}");
    assert_eq!(alice.list().len(), 25);
}

#[test]
fn a_failing_target_is_tried_again_and_its_last_delivery_says_why() {
    let hub = Hub::start();
    let target = Receiver::start(&hub);
    let client = RawClient::new(&hub);
    create_repo(&client, "m", false);
    let alice = Api::new(&hub, &hub.token);
    let hook = alice.create(json!({"url": target.at("/fail"), "watched": [{"type": "model", "name": "alice/m"}], "domains": ["repo"]}));
    let id = hook["id"].as_str().unwrap();
    client.commit("alice/m", &readme("# m\n")).unwrap();
    let last = alice.last_delivery(id);
    assert_eq!(last["status"], 500, "{last}");
    assert_eq!(last["ok"], false);
    assert_eq!(last["attempts"], 3);
    assert_eq!(last["error"], "HTTP 500 Internal Server Error", "the status only: what the target says is not kept");
    assert_eq!(target.posts("/fail").len(), 3, "three attempts in all");
    let stats = hub.state.webhooks.stats();
    assert_eq!((stats.failed, stats.dropped), (1, 0));
}
