//! The read cache never answers from before a write of this process or of another Commons
//! process on the same database.

use commons_db::{CommitInfo, Db, OrgRole, RefKind, RepoKind};

#[tokio::test]
async fn a_write_is_seen_at_once_by_the_process_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("commons.db")).await.unwrap();
    db.create_user("alice", "Alice").await.unwrap();
    let repo = db.create_repo(RepoKind::Model, "alice", "m", false, "alice", &[]).await.unwrap();
    let main = db.resolve_revision(&repo, "main").await.unwrap();

    // Read (and so cached), then changed: the next read sees the change.
    assert!(!db.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private);
    db.set_private(&repo, true).await.unwrap();
    assert!(db.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private, "made private: not public from the cache");

    assert!(db.resolve_revision(&repo, "v1").await.is_err());
    db.create_ref(&repo, RefKind::Tag, "v1", &main).await.unwrap();
    assert_eq!(db.resolve_revision(&repo, "v1").await.unwrap(), main);
    db.delete_ref(&repo, RefKind::Tag, "v1").await.unwrap();
    assert!(db.resolve_revision(&repo, "v1").await.is_err(), "a deleted tag no longer resolves");

    db.move_repo(&repo, "alice", "renamed").await.unwrap();
    let by_old_name = db.get_repo(RepoKind::Model, "alice", "m").await.unwrap().expect("the old name leads to the moved repository");
    assert_eq!(by_old_name.name, "renamed", "at once, not the cached repository under its old name");
    assert!(db.get_repo(RepoKind::Model, "alice", "renamed").await.unwrap().is_some());
}

/// Two handles on one database file, each with its own connections, cache and generation file
/// descriptor: what a running hub and a `commons` command (or a second server) are.
#[tokio::test]
async fn another_process_write_is_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commons.db");
    let server = Db::open(&path).await.unwrap();
    let other = Db::open(&path).await.unwrap();
    server.create_user("alice", "Alice").await.unwrap();
    server.create_user("bob", "Bob").await.unwrap();
    let repo = server.create_repo(RepoKind::Model, "alice", "m", false, "alice", &[]).await.unwrap();

    // Each answer read (and so kept) by the server, then changed by the other process: the
    // server's next read sees the change, with no wait.
    assert!(!server.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private);
    other.set_private(&repo, true).await.unwrap();
    assert!(server.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private, "made private elsewhere: not public here");

    let secret = other.create_token("bob", "laptop", commons_db::Scope::Write).await.unwrap();
    let token = server.authenticate(&secret).await.unwrap().expect("a new token works");
    let bob = token.user.id;
    let id = other.tokens_of(bob).await.unwrap()[0].id;
    assert!(other.revoke_token(bob, id).await.unwrap());
    assert!(server.authenticate(&secret).await.unwrap().is_none(), "a token revoked elsewhere stops working at once");

    let org = other.create_org("acme", "Acme", "alice").await.unwrap();
    other.set_member_role(org.id, "bob", OrgRole::Read).await.unwrap();
    assert_eq!(server.readable_namespaces("bob").await.unwrap(), ["bob", "acme"]);
    other.remove_member(org.id, "bob").await.unwrap();
    assert_eq!(server.readable_namespaces("bob").await.unwrap(), ["bob"], "a membership removed elsewhere ends at once");
}

#[tokio::test]
async fn a_search_page_rows_and_a_reader_namespaces_are_read_again_after_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("commons.db")).await.unwrap();
    db.create_user("alice", "Alice").await.unwrap();
    db.create_user("bob", "Bob").await.unwrap();
    let repo = db.create_repo(RepoKind::Model, "alice", "m", false, "alice", &[]).await.unwrap();

    // A page's rows, read (and so kept), then the repository made private: gone at once for
    // a stranger, still there for its owner.
    let page = |readable: Vec<String>| {
        let db = db.clone();
        async move { db.repos_by_ids(RepoKind::Model, &[repo.id], &readable).await.unwrap() }
    };
    assert_eq!(page(vec![]).await.len(), 1);
    db.set_private(&repo, true).await.unwrap();
    assert!(page(vec![]).await.is_empty(), "a private repository is not shown from the cache");
    assert!(page(vec!["alice".into()]).await[0].private, "its owner sees the row as it is now");

    // The head of `main` a listing shows moves with a commit.
    let before = db.main_readmes(std::slice::from_ref(&repo)).await.unwrap()[&repo.id].0.clone();
    let squashed = db.squash_branch(&repo, "main", &CommitInfo { author: "alice", title: "squash", message: "" }).await.unwrap();
    let after = db.main_readmes(std::slice::from_ref(&repo)).await.unwrap()[&repo.id].0.clone();
    assert_ne!(before, after);
    assert_eq!(after, squashed.id, "the new head, not the cached one");

    // Whose private repositories a user reads changes with a membership.
    assert_eq!(db.readable_namespaces("bob").await.unwrap(), ["bob"]);
    let org = db.create_org("acme", "Acme", "alice").await.unwrap();
    db.set_member_role(org.id, "bob", OrgRole::Read).await.unwrap();
    assert_eq!(db.readable_namespaces("bob").await.unwrap(), ["bob", "acme"], "a new membership is seen at once");
    db.set_member_role(org.id, "bob", OrgRole::NoAccess).await.unwrap();
    assert_eq!(db.readable_namespaces("bob").await.unwrap(), ["bob"]);
}

/// A verified result recorded as the compute coordinator records one: on a connection of its
/// own, outside the hub's write turns.
async fn record_result(db: &Db, dataset: i64, model: i64, value: f64) {
    let owner: i64 = commons_db::sql::query_scalar("SELECT id FROM users WHERE name = 'alice'").fetch_one(db.pool()).await.unwrap();
    let job: i64 = commons_db::sql::query_scalar(
        "INSERT INTO jobs (owner_id, kind, spec, state, escrow, created_at, updated_at) VALUES ($1, 'eval', '{}', 'done', 0, 1, 1) RETURNING id",
    )
    .bind(owner)
    .fetch_one(db.pool())
    .await
    .unwrap();
    commons_db::sql::query(
        "INSERT INTO board_entries (job_id, dataset_repo_id, dataset_commit, split, metric, value, higher_is_better, model_repo_id,
           model_commit, metrics, verification, agreed, workers, owners, credits, created_at)
         VALUES ($1, $2, 'c0ffee', 'test', 'accuracy', $3, TRUE, $4, 'beef', '{}', 'attested', '[]', 1, 1, 1, 1)",
    )
    .bind(job)
    .bind(dataset)
    .bind(value)
    .bind(model)
    .execute(db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_board_is_read_again_once_the_coordinator_notes_its_write_and_after_any_other_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commons.db");
    let db = Db::open(&path).await.unwrap();
    let other = Db::open(&path).await.unwrap();
    db.create_user("alice", "Alice").await.unwrap();
    let dataset = db.create_repo(RepoKind::Dataset, "alice", "digits", false, "alice", &[]).await.unwrap();
    let first = db.create_repo(RepoKind::Model, "alice", "first", false, "alice", &[]).await.unwrap();
    let second = db.create_repo(RepoKind::Model, "alice", "second", false, "alice", &[]).await.unwrap();
    let page = |db: Db| async move { db.board(None, dataset.id, "test", "accuracy", 50, 0).await.unwrap().unwrap_or_default().len() };

    record_result(&db, dataset.id, first.id, 0.9).await;
    db.note_write();
    assert_eq!(page(db.clone()).await, 1);
    assert_eq!(db.board_entries_of_model(None, first.id, 10).await.unwrap().len(), 1);
    assert_eq!(db.board_names(None, dataset.id, 10).await.unwrap(), [("test".to_string(), "accuracy".to_string())]);

    // Recorded and noted (as the coordinator does once its transaction commits): the next page
    // has it, here and in another process.
    assert_eq!(page(other.clone()).await, 1);
    record_result(&db, dataset.id, second.id, 0.95).await;
    db.note_write();
    assert_eq!(page(db.clone()).await, 2, "the board's page, read again");
    assert_eq!(page(other.clone()).await, 2, "and in another process");

    // A model made private leaves the board at once for anonymous readers.
    db.set_private(&second, true).await.unwrap();
    assert_eq!(page(db.clone()).await, 1);
    assert!(db.board_entries_of_model(None, second.id, 10).await.unwrap().is_empty());
    assert_eq!(db.board(Some("alice"), dataset.id, "test", "accuracy", 50, 0).await.unwrap().unwrap().len(), 2, "its owner still sees it");
}
