//! Organizations: a namespace shared by its members, each with a role that decides what they
//! read, create and write; managed by its admins; read back by `whoami`, its overview and its
//! members list, and shown on its page.

mod support;

use serde_json::{Value, json};
use support::{Answer, Hub, call};

/// Organization `name` founded by alice (its admin), as `commons org create` makes one.
fn org(hub: &Hub, name: &str) {
    hub.block_on(hub.state.db.create_org(name, &format!("The {name}"), "alice")).unwrap();
}

fn set_role(hub: &Hub, org: &str, user: &str, role: &str, token: &str) -> Answer {
    call(hub, "PUT", &format!("/api/organizations/{org}/members/{user}/role"), Some(token), Some(json!({"role": role})))
}

fn create(hub: &Hub, token: &str, org: &str, name: &str, private: Option<bool>) -> Answer {
    let mut body = json!({"name": name, "organization": org, "type": "model"});
    if let Some(private) = private {
        body["private"] = json!(private);
    }
    call(hub, "POST", "/api/repos/create", Some(token), Some(body))
}

fn commit(hub: &Hub, token: &str, repo: &str, path: &str) -> Answer {
    let ndjson = [
        json!({"key": "header", "value": {"summary": format!("add {path}")}}),
        json!({"key": "file", "value": {"path": path, "content": "aGVsbG8=", "encoding": "base64"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let http = reqwest::blocking::Client::new();
    let resp = http
        .post(format!("{}/api/models/{repo}/commit/main", hub.url()))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    Answer { status, code: String::new(), body: serde_json::from_str(&text).unwrap_or(Value::Null), link: None, text }
}

fn listed(hub: &Hub, token: Option<&str>, query: &str) -> Vec<String> {
    let answer = call(hub, "GET", &format!("/api/models?{query}"), token, None);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn members_read_an_organizations_private_repositories_as_their_role_allows_and_others_do_not_see_them() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let carol = hub.add_user("carol");
    org(&hub, "lab");
    assert_eq!(create(&hub, &hub.token, "lab", "secret", Some(true)).status, 200);
    assert_eq!(commit(&hub, &hub.token, "lab/secret", "weights.txt").status, 200);
    assert_eq!(set_role(&hub, "lab", "bob", "read", &hub.token).body, json!({"success": true}));

    // A reader sees it everywhere a repository is seen; a stranger nowhere.
    assert_eq!(call(&hub, "GET", "/api/models/lab/secret", Some(&bob), None).status, 200);
    assert_eq!(call(&hub, "GET", "/lab/secret/resolve/main/weights.txt", Some(&bob), None).text, "hello");
    assert_eq!(listed(&hub, Some(&bob), "author=lab"), ["lab/secret"]);
    assert_eq!(listed(&hub, Some(&bob), "search=secret"), ["lab/secret"], "found by search too");
    assert_eq!(call(&hub, "GET", "/api/models/lab/secret", Some(&carol), None).status, 404);
    assert_eq!(call(&hub, "GET", "/lab/secret/resolve/main/weights.txt", Some(&carol), None).status, 404);
    assert!(listed(&hub, Some(&carol), "author=lab").is_empty());
    assert!(listed(&hub, Some(&carol), "search=secret").is_empty());
    assert!(listed(&hub, None, "author=lab").is_empty());

    // A reader neither writes nor creates.
    let refused = commit(&hub, &bob, "lab/secret", "b.txt");
    assert_eq!(refused.status, 403, "{}", refused.text);
    let refused = create(&hub, &bob, "lab", "bobs", None);
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.body["error"], "You don't have the rights to create a model under this namespace", "the Hub's words");

    // A contributor creates, and writes only what it created.
    set_role(&hub, "lab", "bob", "contributor", &hub.token);
    assert_eq!(create(&hub, &bob, "lab", "bobs", None).status, 200);
    assert_eq!(commit(&hub, &bob, "lab/bobs", "b.txt").status, 200);
    assert_eq!(commit(&hub, &bob, "lab/secret", "b.txt").status, 403);
    let info = call(&hub, "GET", "/api/models/lab/bobs", None, None);
    assert_eq!(info.body["author"], "lab", "the organization owns what its members create");

    // A writer writes every repository, and administers them.
    set_role(&hub, "lab", "bob", "write", &hub.token);
    assert_eq!(commit(&hub, &bob, "lab/secret", "b.txt").status, 200);
    let settings = call(&hub, "PUT", "/api/models/lab/secret/settings", Some(&bob), Some(json!({"private": true})));
    assert_eq!(settings.status, 200, "{}", settings.text);

    // `no_access` is a member who sees nothing private.
    set_role(&hub, "lab", "bob", "no_access", &hub.token);
    assert_eq!(call(&hub, "GET", "/api/models/lab/secret", Some(&bob), None).status, 404);
    assert!(listed(&hub, Some(&bob), "author=lab").contains(&"lab/bobs".to_string()), "public ones stay in sight");
    assert!(!listed(&hub, Some(&bob), "author=lab").contains(&"lab/secret".to_string()));
}

#[test]
fn whoami_the_overview_and_the_members_list_tell_who_belongs_with_roles_only_to_members() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let carol = hub.add_user("carol");
    org(&hub, "lab");
    set_role(&hub, "lab", "bob", "read", &hub.token);

    let me = call(&hub, "GET", "/api/whoami-v2", Some(&bob), None);
    let orgs = me.body["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 1, "{}", me.text);
    assert_eq!((&orgs[0]["name"], &orgs[0]["fullname"], &orgs[0]["roleInOrg"]), (&json!("lab"), &json!("The lab"), &json!("read")));
    assert_eq!(call(&hub, "GET", "/api/whoami-v2", Some(&carol), None).body["orgs"], json!([]));

    assert_eq!(create(&hub, &hub.token, "lab", "public-net", None).status, 200);
    assert_eq!(create(&hub, &hub.token, "lab", "hidden-net", Some(true)).status, 200);
    let overview = call(&hub, "GET", "/api/organizations/lab/overview", None, None);
    assert_eq!((overview.body["name"].clone(), overview.body["fullname"].clone()), (json!("lab"), json!("The lab")));
    assert_eq!((overview.body["numUsers"].as_i64(), overview.body["numModels"].as_i64()), (Some(2), Some(1)), "public ones counted");
    assert_eq!(call(&hub, "GET", "/api/organizations/nowhere/overview", None, None).status, 404);

    // Paged by name, linked by `Link`; roles to members only.
    let first = call(&hub, "GET", "/api/organizations/lab/members?limit=1", Some(&carol), None);
    assert_eq!(
        first.body,
        json!([{"user": "alice", "fullname": "Alice", "avatarUrl": "", "type": "user", "isPro": false, "isFollowing": false}])
    );
    let next = first.link.expect("a next page");
    let next = next.trim_start_matches('<').split('>').next().unwrap().trim_start_matches(&hub.url()).to_string();
    let second = call(&hub, "GET", &next, Some(&carol), None);
    assert_eq!(second.body.as_array().unwrap().iter().map(|m| m["user"].clone()).collect::<Vec<_>>(), [json!("bob")]);
    assert!(second.link.is_none());
    let inside = call(&hub, "GET", "/api/organizations/lab/members", Some(&bob), None);
    let roles: Vec<_> = inside.body.as_array().unwrap().iter().map(|m| m["role"].clone()).collect();
    assert_eq!(roles, [json!("admin"), json!("read")]);

    let user = call(&hub, "GET", "/api/users/bob/overview", None, None);
    assert_eq!((user.body["user"].clone(), user.body["orgs"][0]["name"].clone()), (json!("bob"), json!("lab")));
}

#[test]
fn only_an_admin_manages_members_and_an_organization_keeps_one() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    hub.add_user("carol");
    org(&hub, "lab");
    set_role(&hub, "lab", "bob", "write", &hub.token);

    let refused = set_role(&hub, "lab", "carol", "admin", &bob);
    assert_eq!(refused.status, 403, "a writer does not manage members: {}", refused.text);
    assert_eq!(set_role(&hub, "lab", "carol", "owner", &hub.token).status, 400, "an unknown role");
    assert_eq!(set_role(&hub, "lab", "nobody", "read", &hub.token).status, 404, "an unknown user");
    let last = set_role(&hub, "lab", "alice", "write", &hub.token);
    assert_eq!(last.status, 400, "the last admin stays: {}", last.text);
    assert_eq!(call(&hub, "DELETE", "/api/organizations/lab/members/alice", Some(&hub.token), None).status, 400);
    assert_eq!(call(&hub, "GET", "/api/whoami-v2", Some(&hub.token), None).body["orgs"][0]["roleInOrg"], "admin", "nothing changed");

    // A read token of an admin does not manage either.
    let read = hub.add_token("alice", "read");
    assert_eq!(set_role(&hub, "lab", "carol", "read", &read).status, 403);

    // A member may leave; another admin may then demote the first.
    assert_eq!(call(&hub, "DELETE", "/api/organizations/lab/members/bob", Some(&bob), None).status, 200);
    assert_eq!(call(&hub, "GET", "/api/whoami-v2", Some(&bob), None).body["orgs"], json!([]));
    assert_eq!(set_role(&hub, "lab", "carol", "admin", &hub.token).status, 200);
    assert_eq!(set_role(&hub, "lab", "alice", "read", &hub.token).status, 200);
    assert_eq!(set_role(&hub, "lab", "bob", "read", &hub.token).status, 403, "alice is no admin now");
}

#[test]
fn an_organizations_name_is_a_namespace_no_user_shares_and_no_stranger_writes_in() {
    let hub = Hub::start();
    org(&hub, "lab");
    assert!(matches!(hub.block_on(hub.state.db.create_user("lab", "Lab")), Err(commons_db::DbError::AlreadyExists(_))));
    assert!(matches!(hub.block_on(hub.state.db.create_user("LAB", "Lab")), Err(commons_db::DbError::AlreadyExists(_))));
    assert!(matches!(hub.block_on(hub.state.db.create_org("alice", "A", "alice")), Err(commons_db::DbError::AlreadyExists(_))));
    assert!(matches!(hub.block_on(hub.state.db.create_org("Lab", "A", "alice")), Err(commons_db::DbError::AlreadyExists(_))));

    let dave = hub.add_user("dave");
    assert_eq!(create(&hub, &dave, "lab", "mine", None).status, 403, "not a member");
    assert_eq!(create(&hub, &dave, "alice", "mine", None).status, 403, "another user's");
    assert_eq!(create(&hub, &dave, "nowhere", "mine", None).status, 403, "no such namespace");
    assert_eq!(create(&hub, &hub.token, "lab", "ok", None).status, 200);
    let moved = call(&hub, "POST", "/api/repos/move", Some(&dave), Some(json!({"fromRepo": "lab/ok", "toRepo": "dave/ok"})));
    assert_eq!(moved.status, 403, "a stranger does not move a public repository out: {}", moved.text);
    assert_eq!(call(&hub, "GET", "/api/models/lab/ok", None, None).status, 200, "it stayed");
}

#[test]
fn repositories_of_an_organization_private_by_default_start_private_unless_said_otherwise() {
    let hub = Hub::start();
    org(&hub, "corp");
    let set = call(&hub, "PUT", "/api/organizations/corp/settings", Some(&hub.token), Some(json!({"defaultRepoVisibility": "private"})));
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(create(&hub, &hub.token, "corp", "quiet", None).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/corp/quiet", None, None).status, 404, "private by default");
    assert_eq!(call(&hub, "GET", "/api/models/corp/quiet", Some(&hub.token), None).body["private"], true);
    assert_eq!(create(&hub, &hub.token, "corp", "loud", Some(false)).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/corp/loud", None, None).body["private"], false, "unless said otherwise");
    // The user's own namespace keeps its default.
    assert_eq!(create(&hub, &hub.token, "alice", "mine", None).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/alice/mine", None, None).body["private"], false);
}

#[test]
fn an_organizations_page_shows_its_repositories_and_members_and_its_admins_manage_it() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    org(&hub, "lab");
    set_role(&hub, "lab", "bob", "read", &hub.token);
    create(&hub, &hub.token, "lab", "open-net", None);
    create(&hub, &hub.token, "lab", "closed-net", Some(true));

    let outside = call(&hub, "GET", "/lab", None, None);
    assert_eq!(outside.status, 200);
    assert!(outside.text.contains("The lab") && outside.text.contains("open-net"), "{}", outside.text);
    assert!(!outside.text.contains("closed-net"), "a private repository stays hidden");
    assert!(outside.text.contains("/alice") && outside.text.contains("/bob"), "members are listed");
    assert!(!outside.text.contains("Manage members"));
    let member = call(&hub, "GET", "/lab", Some(&bob), None);
    assert!(member.text.contains("closed-net"), "a member sees it");
    assert!(member.text.contains("you are <strong>read</strong>"));
    assert!(!member.text.contains("Manage members"), "only admins manage");
    let admin = call(&hub, "GET", "/lab", Some(&hub.token), None);
    assert!(admin.text.contains("Manage members"));

    // The forms: found an organization, set a role, and a refusal said on the page.
    let form = |path: &str, token: &str, fields: &[(&str, &str)]| {
        let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let resp = http.post(format!("{}{path}", hub.url())).bearer_auth(token).form(fields).send().unwrap();
        (resp.status().as_u16(), resp.headers().get("location").map(|l| l.to_str().unwrap().to_string()), resp.text().unwrap())
    };
    let founded = form("/organizations/new", &bob, &[("name", "bobs-club"), ("fullname", "Bob's Club")]);
    assert_eq!((founded.0, founded.1.as_deref()), (303, Some("/bobs-club")), "{}", founded.2);
    assert_eq!(call(&hub, "GET", "/api/whoami-v2", Some(&bob), None).body["orgs"][0]["roleInOrg"], "admin");
    let taken = form("/organizations/new", &bob, &[("name", "alice"), ("fullname", "")]);
    assert_eq!(taken.0, 409, "a user's name is taken");
    let promoted = form("/organizations/lab/members", &hub.token, &[("user", "bob"), ("role", "write")]);
    assert_eq!(promoted.0, 303, "{}", promoted.2);
    assert_eq!(call(&hub, "GET", "/api/organizations/lab/members", Some(&bob), None).body[1]["role"], "write");
    let refused = form("/organizations/lab/members", &hub.token, &[("user", "alice"), ("role", "remove")]);
    assert_eq!(refused.0, 400);
    assert!(refused.2.contains("Refused: an organization keeps at least one admin"), "{}", refused.2);
    assert_eq!(form("/organizations/lab/members", &bob, &[("user", "bob"), ("role", "admin")]).0, 403, "a writer is no admin");

    // The user's page links their organizations; a name nobody has is a 404 page.
    assert!(call(&hub, "GET", "/bob", None, None).text.contains("href=\"/lab\""));
    assert_eq!(call(&hub, "GET", "/nowhere", None, None).status, 404);
}
