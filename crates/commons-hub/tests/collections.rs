//! Collections through the HTTP API as `huggingface_hub` calls it: made, read, changed and
//! deleted by their owner; items added, noted, reordered and removed; private ones seen by
//! nobody else; bad input refused with a JSON error and no change.

mod support;

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use support::Hub;

struct Api<'a> {
    hub: &'a Hub,
    http: Client,
}

impl<'a> Api<'a> {
    fn new(hub: &'a Hub) -> Self {
        Api { hub, http: Client::new() }
    }

    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.hub.url()));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().unwrap()
    }

    /// The status and the JSON body of a call.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let resp = self.send(method, path, token, body);
        let status = resp.status().as_u16();
        let value = resp.json().unwrap_or(Value::Null);
        if status >= 400 {
            assert!(value["error"].is_string() && value["message"].is_string(), "{method} {path}: the JSON error: {value}");
        }
        (status, value)
    }

    fn create(&self, token: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", "/api/collections", Some(token), Some(body));
        assert_eq!(status, 200, "{v}");
        v
    }

    fn get(&self, slug: &str, token: Option<&str>) -> (u16, Value) {
        self.call("GET", &format!("/api/collections/{slug}"), token, None)
    }

    fn repo(&self, token: &str, name: &str, kind: &str, private: bool) {
        let (status, v) =
            self.call("POST", "/api/repos/create", Some(token), Some(json!({"name": name, "type": kind, "private": private})));
        assert_eq!(status, 200, "{v}");
    }

    fn add(&self, token: &str, slug: &str, id: &str, kind: &str, note: Option<&str>) -> (u16, Value) {
        let mut body = json!({"item": {"id": id, "type": kind}});
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        self.call("POST", &format!("/api/collections/{slug}/items"), Some(token), Some(body))
    }

    fn list(&self, query: &str, token: Option<&str>) -> Vec<Value> {
        let (status, v) = self.call("GET", &format!("/api/collections?{query}"), token, None);
        assert_eq!(status, 200, "{v}");
        v.as_array().unwrap().clone()
    }
}

fn slug(c: &Value) -> String {
    c["slug"].as_str().unwrap().to_string()
}

fn ids(c: &Value) -> Vec<String> {
    c["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

fn slugs(list: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(slug).collect();
    out.sort();
    out
}

#[test]
fn a_collection_is_created_read_renamed_and_deleted_by_its_owner() {
    let hub = Hub::start();
    let api = Api::new(&hub);
    let made =
        api.create(&hub.token, json!({"title": "My cool stuff", "namespace": "alice", "description": "Contains a lot", "private": false}));
    let first = slug(&made);
    assert!(first.starts_with("alice/my-cool-stuff-"), "{first}");
    let id = first.rsplit('-').next().unwrap().to_string();
    assert_eq!(id.len(), 24, "the slug ends with the id");
    assert_eq!(made["title"], "My cool stuff");
    assert_eq!(made["description"], "Contains a lot");
    assert_eq!(made["owner"]["name"], "alice");
    assert_eq!(made["items"], json!([]));
    assert_eq!(made["private"], false);
    assert_eq!(made["upvotes"], 0);
    assert_eq!(made["position"], 0);
    assert!(made["theme"].is_string());
    assert!(made["lastUpdated"].as_str().unwrap().ends_with('Z'));
    assert!(made.get("gating").is_none(), "no gating on Commons");

    let (status, got) = api.get(&first, None);
    assert_eq!(status, 200);
    assert_eq!(got["slug"], made["slug"]);

    // Without a namespace the caller's own is used.
    let second = api.create(&hub.token, json!({"title": "Second"}));
    assert_eq!(second["position"], 1, "a new collection comes last");

    let (status, changed) = api.call(
        "PATCH",
        &format!("/api/collections/{first}"),
        Some(&hub.token),
        Some(json!({"title": "Renamed: ICCV 2023", "description": "New description", "private": true, "theme": "pink", "position": 1})),
    );
    assert_eq!(status, 200, "{changed}");
    let data = &changed["data"];
    assert_eq!(data["title"], "Renamed: ICCV 2023");
    assert_eq!(data["description"], "New description");
    assert_eq!(data["private"], true);
    assert_eq!(data["theme"], "pink");
    assert_eq!(data["position"], 1, "moved after the second");
    let renamed = slug(data);
    assert_eq!(renamed, format!("alice/renamed-iccv-2023-{id}"), "a new slug, the same id");
    // Both slugs find it.
    assert_eq!(api.get(&first, Some(&hub.token)).1["slug"], json!(renamed));
    assert_eq!(api.get(&renamed, Some(&hub.token)).1["slug"], json!(renamed));
    assert_eq!(api.get(&slug(&second), None).1["position"], 0);

    // An empty description removes it; what the body leaves out stays.
    let (status, cleared) = api.call("PATCH", &format!("/api/collections/{renamed}"), Some(&hub.token), Some(json!({"description": ""})));
    assert_eq!(status, 200);
    assert_eq!(cleared["data"]["description"], Value::Null);
    assert_eq!(cleared["data"]["theme"], "pink");

    assert_eq!(api.call("DELETE", &format!("/api/collections/{renamed}"), Some(&hub.token), None).0, 200);
    assert_eq!(api.get(&renamed, Some(&hub.token)).0, 404);
    assert_eq!(api.call("DELETE", &format!("/api/collections/{renamed}"), Some(&hub.token), None).0, 404, "deleted once");
}

#[test]
fn creating_a_title_the_owner_already_has_answers_409_with_its_slug() {
    let hub = Hub::start();
    let api = Api::new(&hub);
    let made = api.create(&hub.token, json!({"title": "Favourites", "namespace": "alice"}));
    let (status, again) =
        api.call("POST", "/api/collections", Some(&hub.token), Some(json!({"title": "favourites", "namespace": "alice"})));
    assert_eq!(status, 409);
    assert_eq!(again["slug"], made["slug"], "what the client's exists_ok reads");
    assert_eq!(api.list("owner=alice", Some(&hub.token)).len(), 1);
}

#[test]
fn items_are_added_noted_reordered_and_removed() {
    let hub = Hub::start();
    let api = Api::new(&hub);
    api.repo(&hub.token, "m", "model", false);
    api.repo(&hub.token, "d", "dataset", false);
    let nested = slug(&api.create(&hub.token, json!({"title": "Nested", "namespace": "alice"})));
    let c = slug(&api.create(&hub.token, json!({"title": "Main", "namespace": "alice"})));

    let (status, after) = api.add(&hub.token, &c, "alice/m", "model", Some("This is my model"));
    assert_eq!(status, 200, "{after}");
    assert_eq!(ids(&after), ["alice/m"], "the answer is the collection");
    assert_eq!(api.add(&hub.token, &c, "alice/d", "dataset", None).0, 200);
    assert_eq!(api.add(&hub.token, &c, &nested, "collection", None).0, 200);

    let (_, got) = api.get(&c, Some(&hub.token));
    let items = got["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    assert_eq!((&items[0]["id"], &items[0]["type"], &items[0]["position"]), (&json!("alice/m"), &json!("model"), &json!(0)));
    assert_eq!(items[0]["note"]["text"], "This is my model");
    assert_eq!((&items[1]["id"], &items[1]["type"]), (&json!("alice/d"), &json!("dataset")));
    assert!(items[1].get("note").is_none());
    assert_eq!((&items[2]["slug"], &items[2]["type"], &items[2]["position"]), (&json!(nested), &json!("collection"), &json!(2)));

    // Twice is a conflict; what does not exist (or is not of that type) is missing; what
    // Commons does not host is bad input; a collection does not hold itself.
    assert_eq!(api.add(&hub.token, &c, "alice/m", "model", None).0, 409);
    assert_eq!(api.add(&hub.token, &c, "alice/m", "dataset", None).0, 404);
    assert_eq!(api.add(&hub.token, &c, "alice/nothing", "model", None).0, 404);
    assert_eq!(api.add(&hub.token, &c, "alice/space", "space", None).0, 400);
    assert_eq!(api.add(&hub.token, &c, "2307.09288", "paper", None).0, 400);
    assert_eq!(api.add(&hub.token, &c, &c, "collection", None).0, 400);
    assert_eq!(ids(&api.get(&c, None).1).len(), 3, "the refused ones added nothing");

    // The first item gets a new note and moves to the second place.
    let first = items[0]["_id"].as_str().unwrap().to_string();
    let item_path = format!("/api/collections/{c}/items/{first}");
    let (status, v) = api.call("PATCH", &item_path, Some(&hub.token), Some(json!({"note": "New note", "position": 1})));
    assert_eq!(status, 200, "{v}");
    let (_, got) = api.get(&c, None);
    assert_eq!(ids(&got)[..2], ["alice/d", "alice/m"]);
    assert_eq!(got["items"][1]["note"]["text"], "New note");
    assert_eq!(got["items"][1]["position"], 1);
    // A position past the end is refused, and moves nothing.
    assert_eq!(api.call("PATCH", &item_path, Some(&hub.token), Some(json!({"position": 3}))).0, 400);
    assert_eq!(api.call("PATCH", &item_path, Some(&hub.token), Some(json!({"position": -1}))).0, 400);
    assert_eq!(ids(&api.get(&c, None).1)[..2], ["alice/d", "alice/m"]);
    // An empty note removes it.
    assert_eq!(api.call("PATCH", &item_path, Some(&hub.token), Some(json!({"note": ""}))).0, 200);
    assert!(api.get(&c, None).1["items"][1].get("note").is_none());

    assert_eq!(api.call("DELETE", &item_path, Some(&hub.token), None).0, 200);
    assert_eq!(api.call("DELETE", &item_path, Some(&hub.token), None).0, 404, "deleted once");
    assert_eq!(api.call("PATCH", &format!("/api/collections/{c}/items/not-an-id"), Some(&hub.token), Some(json!({}))).0, 404);
    let (_, got) = api.get(&c, None);
    assert_eq!(ids(&got).len(), 2);
    assert_eq!(got["items"][0]["id"], "alice/d");
    assert_eq!(got["items"][1]["position"], 1, "positions close up");
}

#[test]
fn a_private_collection_is_invisible_to_others() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let api = Api::new(&hub);
    api.repo(&hub.token, "m", "model", false);
    let private = slug(&api.create(&hub.token, json!({"title": "Secret plans", "namespace": "alice", "private": true})));
    let public = slug(&api.create(&hub.token, json!({"title": "Open plans", "namespace": "alice"})));
    assert_eq!(api.add(&hub.token, &private, "alice/m", "model", None).0, 200);
    assert_eq!(api.add(&hub.token, &public, "alice/m", "model", None).0, 200);
    // The public one holds the private one: only its owner sees that item.
    assert_eq!(api.add(&hub.token, &public, &private, "collection", None).0, 200);

    assert_eq!(api.get(&private, Some(&hub.token)).0, 200);
    assert_eq!(api.get(&private, Some(&bob)).0, 404, "another user");
    assert_eq!(api.get(&private, None).0, 404, "anonymous");
    assert_eq!(ids(&api.get(&public, Some(&hub.token)).1).len(), 2);
    assert_eq!(ids(&api.get(&public, Some(&bob)).1), ["alice/m"]);
    // Nor can a stranger add it to their own collection.
    let bobs = slug(&api.create(&bob, json!({"title": "Bob's", "namespace": "bob"})));
    assert_eq!(api.add(&bob, &bobs, &private, "collection", None).0, 404);

    // Listings, by owner, by item, by words: never the private one to anyone else.
    assert_eq!(slugs(&api.list("owner=alice", Some(&hub.token))), slugs(&[json!({"slug": private}), json!({"slug": public})]));
    for who in [Some(bob.as_str()), None] {
        assert_eq!(slugs(&api.list("owner=alice", who)), [public.as_str()]);
        assert_eq!(slugs(&api.list("item=models/alice/m", who)), [public.as_str()]);
        assert_eq!(slugs(&api.list("q=plans", who)), [public.as_str()]);
        assert_eq!(api.list(&format!("item=collections/{private}"), who), Vec::<Value>::new());
    }
    assert_eq!(slugs(&api.list(&format!("item=collections/{private}"), Some(&hub.token))), [public.as_str()]);

    // Made public, everyone sees it.
    let (status, _) = api.call("PATCH", &format!("/api/collections/{private}"), Some(&hub.token), Some(json!({"private": false})));
    assert_eq!(status, 200);
    assert_eq!(api.get(&private, Some(&bob)).0, 200);
    assert_eq!(api.list("owner=alice", None).len(), 2);
}

#[test]
fn a_private_repository_in_a_public_collection_is_shown_only_to_its_owner() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let api = Api::new(&hub);
    api.repo(&hub.token, "open", "model", false);
    api.repo(&hub.token, "hidden", "model", true);
    let c = slug(&api.create(&hub.token, json!({"title": "Mixed", "namespace": "alice"})));
    assert_eq!(api.add(&hub.token, &c, "alice/hidden", "model", None).0, 200);
    assert_eq!(api.add(&hub.token, &c, "alice/open", "model", None).0, 200);
    assert_eq!(ids(&api.get(&c, Some(&hub.token)).1), ["alice/hidden", "alice/open"]);
    let (_, seen) = api.get(&c, Some(&bob));
    assert_eq!(ids(&seen), ["alice/open"]);
    assert_eq!(seen["items"][0]["position"], 0, "no gap shows where the hidden one is");
    // Bob cannot add what he cannot read, and a listing by it names nothing to him.
    let bobs = slug(&api.create(&bob, json!({"title": "Bob's", "namespace": "bob"})));
    assert_eq!(api.add(&bob, &bobs, "alice/hidden", "model", None).0, 404);
    assert!(api.list("item=models/alice/hidden", Some(&bob)).is_empty());
    assert_eq!(api.list("item=models/alice/hidden", Some(&hub.token)).len(), 1);
}

#[test]
fn another_user_cannot_change_a_collection() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let read = hub.add_token("alice", "read");
    let worker = hub.add_token("alice", "worker");
    let api = Api::new(&hub);
    api.repo(&hub.token, "m", "model", false);
    let c = slug(&api.create(&hub.token, json!({"title": "Alice's", "namespace": "alice", "description": "hers"})));
    let (_, added) = api.add(&hub.token, &c, "alice/m", "model", Some("a note"));
    let item = added["items"][0]["_id"].as_str().unwrap().to_string();
    let before = api.get(&c, None).1;

    let writes = [
        ("PATCH", format!("/api/collections/{c}"), Some(json!({"title": "Bob's now"}))),
        ("DELETE", format!("/api/collections/{c}"), None),
        ("POST", format!("/api/collections/{c}/items"), Some(json!({"item": {"id": "alice/m", "type": "model"}}))),
        ("PATCH", format!("/api/collections/{c}/items/{item}"), Some(json!({"note": "bob was here"}))),
        ("DELETE", format!("/api/collections/{c}/items/{item}"), None),
    ];
    for (method, path, body) in &writes {
        assert_eq!(api.call(method, path, Some(&bob), body.clone()).0, 403, "bob: {method} {path}");
        assert_eq!(api.call(method, path, Some(&read), body.clone()).0, 403, "a read token: {method} {path}");
        assert_eq!(api.call(method, path, Some(&worker), body.clone()).0, 403, "a worker token: {method} {path}");
        assert_eq!(api.call(method, path, None, body.clone()).0, 401, "anonymous: {method} {path}");
    }
    // Nor may anyone make one in another's namespace.
    let (status, _) = api.call("POST", "/api/collections", Some(&bob), Some(json!({"title": "Planted", "namespace": "alice"})));
    assert_eq!(status, 403);
    assert_eq!(api.call("POST", "/api/collections", Some(&read), Some(json!({"title": "Planted"}))).0, 403);
    assert_eq!(api.call("POST", "/api/collections", None, Some(json!({"title": "Planted"}))).0, 401);

    let after = api.get(&c, None).1;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(api.list("owner=alice", None).len(), 1);
}

#[test]
fn bad_input_is_refused_with_a_json_error_and_changes_nothing() {
    let hub = Hub::start();
    let api = Api::new(&hub);
    api.repo(&hub.token, "m", "model", false);
    let long_title = "t".repeat(61);
    let fits = "t".repeat(60);
    for body in [
        json!({"title": long_title}),
        json!({"title": "   "}),
        json!({"title": "two\nlines"}),
        json!({"title": "ok", "description": "d".repeat(151)}),
        json!({"title": "ok", "theme": "rainbow"}),
        json!({"title": 7}),
        json!({"namespace": "alice"}),
        json!({"title": "ok", "resourceGroupId": "66980ecfc1e12a49c8f0e42d"}),
    ] {
        let resp = api.send("POST", "/api/collections", Some(&hub.token), Some(body.clone()));
        assert_eq!(resp.status(), 400, "{body}");
        assert!(resp.headers().contains_key("x-error-code"), "{body}");
    }
    assert!(api.list("owner=alice", Some(&hub.token)).is_empty(), "nothing was created");

    let made = api.create(&hub.token, json!({"title": fits, "description": "d".repeat(150)}));
    let c = slug(&made);
    let (_, added) = api.add(&hub.token, &c, "alice/m", "model", Some("kept"));
    let item = added["items"][0]["_id"].as_str().unwrap().to_string();
    let before = api.get(&c, None).1;
    let path = format!("/api/collections/{c}");
    let item_path = format!("{path}/items/{item}");
    for (method, path, body) in [
        ("PATCH", &path, json!({"title": "x".repeat(61), "private": true})),
        ("PATCH", &path, json!({"title": "fine", "description": "d".repeat(151)})),
        ("PATCH", &path, json!({"title": "fine", "theme": "rainbow"})),
        ("PATCH", &path, json!({"title": "fine", "position": 5})),
        ("PATCH", &path, json!({"private": "yes"})),
        ("PATCH", &item_path, json!({"note": "n".repeat(501), "position": 0})),
        ("PATCH", &item_path, json!({"note": "fine", "position": 9})),
    ] {
        assert_eq!(api.call(method, path, Some(&hub.token), Some(body.clone())).0, 400, "{method} {path} {body}");
    }
    let (status, _) = api.add(&hub.token, &c, "alice/m", "unicorn", None);
    assert_eq!(status, 400);
    let long_note = "n".repeat(501);
    let (status, _) = api.add(&hub.token, &c, "alice/m", "model", Some(&long_note));
    assert_eq!(status, 400);
    // A body that is not JSON.
    for (method, path) in
        [("POST", "/api/collections".to_string()), ("PATCH", path.clone()), ("POST", format!("{path}/items")), ("PATCH", item_path.clone())]
    {
        let resp = api
            .http
            .request(method.parse().unwrap(), format!("{}{path}", hub.url()))
            .bearer_auth(&hub.token)
            .header("content-type", "application/json")
            .body("{\"title\": ")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{method} {path}");
        assert!(resp.headers().contains_key("x-error-code"));
    }
    let after = api.get(&c, None).1;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(after["items"][0]["note"]["text"], "kept");

    // Listing parameters.
    for query in ["limit=abc", "limit=0", "sort=stars", "item=widgets/x", &format!("q={}", "q".repeat(201)), "cursor=-1"] {
        let (status, _) = api.call("GET", &format!("/api/collections?{query}"), None, None);
        assert_eq!(status, 400, "{query}");
    }
}

#[test]
fn listings_filter_by_owner_item_and_words_and_page_with_link_headers() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let api = Api::new(&hub);
    for name in ["a", "b", "c", "d", "e"] {
        api.repo(&hub.token, name, "model", false);
    }
    let big = slug(&api.create(&hub.token, json!({"title": "Big one", "namespace": "alice"})));
    for name in ["a", "b", "c", "d", "e"] {
        assert_eq!(api.add(&hub.token, &big, &format!("alice/{name}"), "model", None).0, 200);
    }
    for i in 0..3 {
        api.create(&hub.token, json!({"title": format!("Small {i}"), "namespace": "alice"}));
    }
    api.create(&bob, json!({"title": "Bob's small one", "namespace": "bob"}));

    let all = api.list("", None);
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|c| c.get("position").is_none()), "the client numbers a listing itself");
    let listed_big = all.iter().find(|c| slug(c) == big).unwrap();
    assert_eq!(ids(listed_big), ["alice/a", "alice/b", "alice/c", "alice/d"], "four items each in a listing");
    assert_eq!(ids(&api.get(&big, None).1).len(), 5, "all of them one by one");

    assert_eq!(api.list("owner=bob", None).len(), 1);
    assert_eq!(api.list("owner=alice&owner=bob", None).len(), 5);
    assert_eq!(slugs(&api.list("item=models/alice/e", None)), [big.as_str()]);
    assert!(api.list("item=models/alice/nothing", None).is_empty());
    assert!(api.list("item=spaces/alice/x", None).is_empty());
    assert_eq!(api.list("q=SMALL", None).len(), 4);
    assert_eq!(api.list("q=100%25", None).len(), 0, "a % is a character, not a wildcard");

    // Pages of two, linked.
    let mut seen = Vec::new();
    let mut url = format!("{}/api/collections?owner=alice&limit=2&sort=lastModified", hub.url());
    loop {
        let resp = api.http.get(&url).send().unwrap();
        assert_eq!(resp.status(), 200);
        let next = resp.headers().get("link").map(|l| l.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(slug));
        match next {
            Some(link) => url = link.trim_start_matches('<').split('>').next().unwrap().to_string(),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "every collection of alice's once");
    assert_eq!(api.list("limit=1000", None).len(), 5, "a limit over 100 is a page of 100");
}

#[test]
fn a_deleted_repository_or_collection_leaves_the_collections_that_held_it() {
    let hub = Hub::start();
    let api = Api::new(&hub);
    api.repo(&hub.token, "m", "model", false);
    api.repo(&hub.token, "d", "dataset", false);
    let nested = slug(&api.create(&hub.token, json!({"title": "Nested", "namespace": "alice"})));
    let c = slug(&api.create(&hub.token, json!({"title": "Holder", "namespace": "alice"})));
    assert_eq!(api.add(&hub.token, &c, "alice/m", "model", None).0, 200);
    assert_eq!(api.add(&hub.token, &c, &nested, "collection", None).0, 200);
    assert_eq!(api.add(&hub.token, &c, "alice/d", "dataset", None).0, 200);

    let (status, v) = api.call("DELETE", "/api/repos/delete", Some(&hub.token), Some(json!({"name": "m", "type": "model"})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(api.call("DELETE", &format!("/api/collections/{nested}"), Some(&hub.token), None).0, 200);
    let (_, got) = api.get(&c, None);
    assert_eq!(ids(&got), ["alice/d"]);
    assert_eq!(got["items"][0]["position"], 0);
    // And the one left can still be moved and removed.
    let item = got["items"][0]["_id"].as_str().unwrap().to_string();
    assert_eq!(api.call("PATCH", &format!("/api/collections/{c}/items/{item}"), Some(&hub.token), Some(json!({"position": 0}))).0, 200);
    assert_eq!(api.call("DELETE", &format!("/api/collections/{c}/items/{item}"), Some(&hub.token), None).0, 200);
    assert_eq!(api.get(&c, None).1["items"], json!([]));
}
