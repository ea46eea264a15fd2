//! The search index follows the repositories, and catches up with what changed while it did
//! not (a crash, an older version, another process).

use std::sync::Arc;

use commons_db::{CommitInfo, Db, RepoKind, RepoQuery, RepoSort};
use commons_repo::{Change, Repos};
use commons_search::SearchIndex;
use commons_storage::Cas;

async fn found(repos: &Repos, text: &str, viewer: Option<&str>) -> Vec<i64> {
    let q = RepoQuery { viewer: viewer.map(str::to_string), limit: 100, ..Default::default() };
    let mut ids = repos.search(RepoKind::Model, text, &q).await.unwrap().unwrap();
    ids.sort();
    ids
}

async fn by_likes(repos: &Repos, text: &str) -> Vec<i64> {
    let q = RepoQuery { sort: RepoSort::Likes, limit: 100, ..Default::default() };
    repos.search(RepoKind::Model, text, &q).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_index_that_missed_changes_catches_up_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("meta.db")).await.unwrap();
    let alice = db.create_user("alice", "Alice").await.unwrap();
    let cas = Cas::local(db.clone(), &dir.path().join("objects")).unwrap();
    let first = Arc::new(SearchIndex::open(&dir.path().join("search-1")).unwrap());
    let repos = Repos::new(db.clone(), cas.clone()).with_search(first);

    let card = |text: &str| format!("---\nlicense: mit\ntags: [digits]\n---\n{text}\n").into_bytes();
    let info = CommitInfo { author: "alice", title: "card", message: "" };
    let mut made = Vec::new();
    for (name, text) in [("cnn", "A convolutional network"), ("mlp", "A perceptron"), ("glove", "Word vectors")] {
        let repo = repos.create(RepoKind::Model, "alice", name, false, "alice").await.unwrap();
        let head = repos.pin(&repo, "main").await.unwrap();
        repos.commit_onto(&repo, "main", &head, vec![Change::Put { path: "README.md".into(), bytes: card(text) }], &info, 1).await.unwrap();
        made.push(repo);
    }
    assert_eq!(found(&repos, "convolutional", None).await, [made[0].id], "commits to main are indexed as they happen");

    // A new, empty index (a hub upgraded in place, or an index lost): everything is stale.
    let second = Arc::new(SearchIndex::open(&dir.path().join("search-2")).unwrap());
    let repos = Repos::new(db.clone(), cas.clone()).with_search(second);
    assert_eq!(found(&repos, "digits", None).await, Vec::<i64>::new());
    assert_eq!(repos.sync_search().await.unwrap(), 3);
    assert_eq!(found(&repos, "digits", None).await, made.iter().map(|r| r.id).collect::<Vec<_>>());

    // Changes made around the index (another process): made private, deleted.
    db.set_private(&made[1], true).await.unwrap();
    db.delete_repo(&made[2]).await.unwrap();
    assert_eq!(repos.sync_search().await.unwrap(), 2, "one changed, one gone");
    assert_eq!(found(&repos, "digits", None).await, [made[0].id], "the private one is hidden, the deleted one gone");
    assert_eq!(found(&repos, "digits", Some("alice")).await, [made[0].id, made[1].id], "its owner still finds it");
    assert_eq!(repos.sync_search().await.unwrap(), 0, "nothing more to do");

    // A like counted around the index: the order by likes follows once it catches up.
    let mlp = repos.create(RepoKind::Model, "alice", "mlp-2", false, "alice").await.unwrap();
    let head = repos.pin(&mlp, "main").await.unwrap();
    repos.commit_onto(&mlp, "main", &head, vec![Change::Put { path: "README.md".into(), bytes: card("More") }], &info, 1).await.unwrap();
    assert_eq!(by_likes(&repos, "digits").await, [mlp.id, made[0].id], "no likes: the newest first");
    db.like(alice.id, &made[0]).await.unwrap();
    assert_eq!(repos.sync_search().await.unwrap(), 1, "a like changes the document");
    assert_eq!(by_likes(&repos, "digits").await, [made[0].id, mlp.id], "the liked one first");
}
