//! The read cache never answers from before a write of the same process, and answers from
//! before another process's write for at most a second.

use commons_db::{Db, RefKind, RepoKind};

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

#[tokio::test]
async fn another_process_write_is_seen_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commons.db");
    let server = Db::open(&path).await.unwrap();
    let other = Db::open(&path).await.unwrap();
    server.create_user("alice", "Alice").await.unwrap();
    let repo = server.create_repo(RepoKind::Model, "alice", "m", false, "alice", &[]).await.unwrap();
    assert!(!server.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private);

    other.set_private(&repo, true).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(server.get_repo(RepoKind::Model, "alice", "m").await.unwrap().unwrap().private, "stale past a second");
}
