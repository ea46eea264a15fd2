//! Several coordinators on one database: on PostgreSQL their leases and reports run at once
//! (row locks, not one lock for all), so what one lock used to guarantee is checked here under
//! contention — every slot handed out once, every unit decided once, every result paid once from
//! an escrow that all of them spend, counters that lose no update, a ledger that adds up. On
//! SQLite (the default run) the same servers share one file.

mod support;

use std::sync::Arc;
use std::time::Duration;

use commons_compute::{ComputeConfig, Coordinator, WhenFull};
use commons_db::{Scope, Token, sql};
use commons_protocol::{Output, Report, credits_for};

const SERVERS: usize = 3;
const OWNERS: usize = 8;
const UNITS: usize = 60;
const QUORUM: i64 = 2;
/// What one validated result earns: one credit's worth of work.
const FLOPS: f64 = commons_protocol::FLOPS_PER_CREDIT;

async fn count(db: &commons_db::Db, query: &str) -> i64 {
    sql::query_scalar::<i64>(sql::AssertSqlSafe(query.to_string())).fetch_one(db.pool()).await.expect(query)
}

/// One volunteer: leases from its own server and reports each result to a server picked in
/// turn, now and then to two at once (a retried request that reached both). Returns how many
/// reports were accepted.
async fn volunteer(db: commons_db::Db, servers: Arc<Vec<Coordinator>>, home: usize, caller: Token, worker: i64) -> usize {
    let mut accepted = 0;
    let mut round = home;
    loop {
        // Sometimes it asks two servers for work at the same moment: they may not both count the
        // same room (one running unit per core, twice over).
        let leases = if round.is_multiple_of(5) {
            let (a, b) = tokio::join!(
                servers[home].leases(&caller, worker, 2, Duration::ZERO, WhenFull::Nothing),
                servers[(home + 1) % SERVERS].leases(&caller, worker, 2, Duration::ZERO, WhenFull::Nothing),
            );
            let mut both = a.expect("lease");
            both.extend(b.expect("lease"));
            assert!(both.len() <= 2, "a worker of one core was handed {} running units by two servers at once", both.len());
            both
        } else {
            servers[home].leases(&caller, worker, 2, Duration::from_millis(200), WhenFull::Nothing).await.expect("lease")
        };
        if leases.is_empty() {
            let open = count(&db, "SELECT COUNT(*) FROM units WHERE state = 'open'").await;
            if open == 0 {
                return accepted;
            }
            continue;
        }
        for lease in leases {
            round += 1;
            let report = || vec![(lease.assignment_id, Report::Success { output: Output::Noop })];
            let answers = if round.is_multiple_of(3) {
                let (a, b) = tokio::join!(
                    servers[round % SERVERS].reports(&caller, report()),
                    servers[(round + 1) % SERVERS].reports(&caller, report()),
                );
                let (a, b) = (a.expect("report").remove(0).expect("report"), b.expect("report").remove(0).expect("report"));
                assert!(a.accepted != b.accepted, "one of two copies of a report is recorded, the other refused: {a:?} {b:?}");
                vec![a, b]
            } else {
                vec![servers[round % SERVERS].reports(&caller, report()).await.expect("report").remove(0).expect("report")]
            };
            accepted += answers.iter().filter(|a| a.accepted).count();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_coordinators_hand_each_slot_out_once_decide_each_unit_once_and_pay_each_result_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = match std::env::var("COMMONS_TEST_POSTGRES") {
        Ok(server) => support::postgres_database(&server).await,
        Err(_) => format!("sqlite://{}", dir.path().join("0").join("commons.db").display()),
    };
    let mut servers = Vec::new();
    let mut hubs = Vec::new();
    for k in 0..SERVERS {
        let hub = commons_hub::AppState::open_with_database(&dir.path().join(k.to_string()), Some(&database), None, None)
            .await
            .expect("open hub");
        servers.push(Coordinator::start(hub.db.clone(), hub.repos.clone(), ComputeConfig::default()).await.expect("coordinator"));
        hubs.push(hub);
    }
    let db = hubs[0].db.clone();
    let submitter = db.create_user("submitter", "Submitter").await.expect("user");
    // The escrow holds what half the results earn: the payments of three servers run it dry, and
    // none may spend what another already spent.
    let escrow_held = credits_for(FLOPS) * QUORUM * UNITS as i64 / 2;
    let job = servers[0].submit_noop_replicated(submitter.id, UNITS, QUORUM, FLOPS, escrow_held).await.expect("job");

    // Volunteers of distinct owners (a quorum counts owners), spread over the servers.
    let servers = Arc::new(servers);
    let mut tasks = Vec::new();
    for i in 0..OWNERS {
        let name = format!("volunteer{i}");
        db.create_user(&name, &name).await.expect("user");
        let token = db.create_token(&name, "worker", Scope::Write).await.expect("token");
        let caller = db.authenticate(&token).await.expect("token lookup").expect("token");
        let home = i % SERVERS;
        let worker =
            servers[home].register(&caller, support::worker_registration(&format!("box{i}"), 1)).await.expect("register").worker_id;
        tasks.push(tokio::spawn(volunteer(db.clone(), servers.clone(), home, caller, worker)));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += tokio::time::timeout(Duration::from_secs(120), task).await.expect("the job ends").expect("volunteer");
    }
    for server in servers.iter() {
        server.housekeeping().await.expect("housekeeping");
    }

    let results = UNITS as i64 * QUORUM;
    assert_eq!(accepted as i64, results, "every slot's result is recorded once");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM units WHERE state = 'done' AND open_slots = 0").await, UNITS as i64, "every unit decided");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM assignments").await, results, "no slot handed out twice");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM assignments WHERE state = 'reported' AND outcome = 'valid'").await, results);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM units u WHERE results_made <> (SELECT COUNT(*) FROM assignments a WHERE a.unit_id = u.id)").await,
        0,
        "each unit counts the results it handed out"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM (SELECT unit_id, worker_id FROM assignments GROUP BY unit_id, worker_id HAVING COUNT(*) > 1) twice"
        )
        .await,
        0,
        "no worker ran one unit twice"
    );
    // Counters updated by reports on three servers at once lost nothing.
    assert_eq!(count(&db, "SELECT CAST(SUM(valid_results) AS BIGINT) FROM workers").await, results);
    // Paid once each while the one escrow every server spent lasted, and not a credit more; the
    // ledger adds up.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ledger_transfers WHERE kind = 'payment'").await, escrow_held);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT assignment_id) FROM ledger_transfers WHERE kind = 'payment'").await, escrow_held);
    let escrow = format!("SELECT balance FROM ledger_accounts WHERE kind = 'escrow' AND job_id = {job}");
    assert_eq!(count(&db, &escrow).await, 0, "the escrow held {escrow_held} credits and paid results of one credit until it was empty");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ledger_accounts a WHERE balance <> (SELECT COALESCE(SUM(amount), 0) FROM ledger_entries e WHERE e.account_id = a.id)").await,
        0,
        "every balance is the sum of its entries"
    );
    assert_eq!(count(&db, "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM ledger_accounts").await, 0, "the ledger sums to zero");
    let job_state = count(&db, &format!("SELECT COUNT(*) FROM jobs WHERE id = {job} AND state = 'done'")).await;
    assert_eq!(job_state, 1, "the job is done");
}
