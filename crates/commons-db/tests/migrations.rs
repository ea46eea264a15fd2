//! Upgrading a database that holds data: migrations that rebuild a table (SQLite cannot change
//! a CHECK constraint in place) keep every row, every reference to it and the foreign keys.

use std::str::FromStr;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

async fn pool(path: &std::path::Path) -> SqlitePool {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).unwrap().create_if_missing(true).foreign_keys(true);
    SqlitePoolOptions::new().max_connections(2).connect_with(options).await.unwrap()
}

#[tokio::test]
async fn the_predict_migration_keeps_jobs_units_and_what_refers_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    // The schema as it was before batch inference, with a job, two units and an assignment.
    let before = pool(&path).await;
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.migrations = migrator.migrations.iter().filter(|m| m.version < 18).cloned().collect::<Vec<_>>().into();
    migrator.run(&before).await.unwrap();
    for statement in [
        "INSERT INTO users (id, name, fullname, created_at) VALUES (1, 'alice', 'Alice', 0)",
        "INSERT INTO workers (id, owner_id, name, cores, memory_bytes, engine_version, platform, numeric_class, speed_gflops, registered_at, last_seen)
         VALUES (1, 1, 'w1', 2, 1, '0.1', 'linux', 'flex', 1.0, 0, 0)",
        "INSERT INTO jobs (id, owner_id, kind, spec, state, escrow, created_at, updated_at, last_served, needs_gpu)
         VALUES (7, 1, 'eval', '{\"kind\":\"noop\",\"units\":2}', 'running', 40, 1, 2, 3, TRUE)",
        "INSERT INTO units (id, job_id, role, payload, state, quorum, open_slots, results_made, max_results, max_errors, flops, created_at, updated_at)
         VALUES (11, 7, 'eval', '{}', 'open', 2, 1, 1, 4, 3, 1e9, 1, 1), (12, 7, 'eval', '{}', 'done', 2, 0, 2, 4, 3, 1e9, 1, 1)",
        "UPDATE units SET validates_unit = 11 WHERE id = 12",
        "INSERT INTO assignments (id, unit_id, worker_id, owner_id, state, lease_expires_at, created_at) VALUES (5, 11, 1, 1, 'running', 9, 1)",
    ] {
        sqlx::query(statement).execute(&before).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    before.close().await;

    commons_db::Db::open(&path).await.expect("the upgrade");

    let after = pool(&path).await;
    let job = sqlx::query("SELECT kind, escrow, last_served, needs_gpu FROM jobs WHERE id = 7").fetch_one(&after).await.unwrap();
    assert_eq!((job.get::<String, _>(0), job.get::<i64, _>(1), job.get::<i64, _>(2), job.get::<bool, _>(3)), ("eval".into(), 40, 3, true));
    let units: Vec<(i64, String, Option<i64>)> = sqlx::query("SELECT id, state, validates_unit FROM units ORDER BY id")
        .fetch_all(&after)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(units, [(11, "open".into(), None), (12, "done".into(), Some(11))]);
    let violations = sqlx::query("PRAGMA foreign_key_check").fetch_all(&after).await.unwrap();
    assert!(violations.is_empty(), "every reference still holds");
    let indexes: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('jobs', 'units') ORDER BY name")
            .fetch_all(&after)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(indexes, ["jobs_active", "units_by_job", "units_wanting_workers", "units_wanting_workers_by_job"]);
    // The new kind and role are allowed; the constraints and foreign keys still hold.
    sqlx::query("INSERT INTO jobs (id, owner_id, kind, spec, state, escrow, created_at, updated_at) VALUES (8, 1, 'predict', '{}', 'queued', 0, 0, 0)")
        .execute(&after)
        .await
        .expect("a predict job");
    sqlx::query("INSERT INTO units (job_id, role, payload, state, quorum, open_slots, max_results, max_errors, flops, created_at, updated_at) VALUES (8, 'predict', '{}', 'open', 2, 2, 4, 3, 1.0, 0, 0)")
        .execute(&after)
        .await
        .expect("a predict unit");
    let unknown = sqlx::query("INSERT INTO units (job_id, role, payload, state, quorum, open_slots, max_results, max_errors, flops, created_at, updated_at) VALUES (8, 'mine', '{}', 'open', 2, 2, 4, 3, 1.0, 0, 0)")
        .execute(&after)
        .await;
    assert!(unknown.is_err(), "an unknown role is still refused");
    let orphan = sqlx::query("INSERT INTO units (job_id, role, payload, state, quorum, open_slots, max_results, max_errors, flops, created_at, updated_at) VALUES (99, 'eval', '{}', 'open', 2, 2, 4, 3, 1.0, 0, 0)")
        .execute(&after)
        .await;
    assert!(orphan.is_err(), "a unit of no job is still refused");
    let dangling = sqlx::query("DELETE FROM units WHERE id = 11").execute(&after).await;
    assert!(dangling.is_err(), "a unit an assignment refers to cannot go");
}
