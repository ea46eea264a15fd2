//! Fair share: one submitter's large queue does not hold another's work behind it; leases and
//! reports in batches keep that order and each report's own fate. A real coordinator on a real
//! SQLite database, a worker speaking the protocol over HTTP.

mod support;

use std::time::Duration;

use commons_client::Client;
use commons_compute::{ComputeConfig, Coordinator};
use commons_db::Scope;
use commons_protocol::{AssignmentReport, JobState, Output, Report};

/// A hub with the compute API on a loopback port, and the same three queues: Alice's two jobs
/// of 10 units, then Bob's one of 3. Carol and Mallory have worker tokens.
struct Queues {
    _dir: tempfile::TempDir,
    hub: commons_hub::AppState,
    url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    alice_first: i64,
    alice_second: i64,
    bob_job: i64,
}

async fn queues() -> Queues {
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = commons_hub::AppState::open(dir.path(), None, None).await.expect("open hub");
    let alice = hub.db.create_user("alice", "Alice").await.expect("user");
    let bob = hub.db.create_user("bob", "Bob").await.expect("user");
    hub.db.create_user("carol", "Carol").await.expect("user");
    hub.db.create_user("mallory", "Mallory").await.expect("user");
    let coordinator = Coordinator::start(hub.db.clone(), hub.repos.clone(), ComputeConfig::default()).await.expect("coordinator");
    let app = commons_hub::router_with_compute(hub.clone(), coordinator.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));
    // Under first-in first-out, Bob would wait for all 20 of Alice's units.
    let alice_first = coordinator.submit_noop(alice.id, 10).await.expect("queue");
    let alice_second = coordinator.submit_noop(alice.id, 10).await.expect("queue");
    let bob_job = coordinator.submit_noop(bob.id, 3).await.expect("queue");
    Queues { _dir: dir, hub, url, server, alice_first, alice_second, bob_job }
}

impl Queues {
    async fn worker_token(&self, user: &str) -> String {
        self.hub.db.create_token(user, "worker", Scope::Write).await.expect("token")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_alternate_between_submitters_whatever_the_size_of_their_queues() {
    let q = queues().await;
    let (alice_first, alice_second, bob_job) = (q.alice_first, q.alice_second, q.bob_job);
    let client = Client::new(&q.url, Some(q.worker_token("carol").await)).expect("client");
    let worker = client.register_worker(&support::worker_registration("carols-box", 1)).await.expect("register").worker_id;
    let mut served = Vec::new();
    let mut next = client.pull(worker, Duration::from_secs(1)).await.expect("pull");
    while let Some(lease) = next {
        served.push(lease.job_id);
        let answer = client
            .report_and_pull(lease.assignment_id, &Report::Success { output: Output::Noop }, worker, Duration::ZERO)
            .await
            .expect("report");
        assert!(answer.accepted, "{}", answer.message);
        next = answer.next;
    }

    assert_eq!(served.len(), 23, "every unit was leased once: {served:?}");
    // Submitters take turns; within Alice's turns, her jobs take turns too.
    assert_eq!(served[..6], [alice_first, bob_job, alice_second, bob_job, alice_first, bob_job], "{served:?}");
    assert!(served[6..].iter().all(|job| *job != bob_job), "{served:?}");
    for job in [alice_first, alice_second, bob_job] {
        let view = client.job(job).await.expect("job view");
        assert_eq!(view.state, JobState::Done, "job {job}: {view:?}");
    }
    q.server.abort();
}

fn noop_done(assignment_id: i64) -> AssignmentReport {
    AssignmentReport { assignment_id, report: Report::Success { output: Output::Noop } }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_leases_keep_the_fair_share_order_and_each_batched_report_stands_alone() {
    let q = queues().await;
    let (alice_first, alice_second, bob_job, url) = (q.alice_first, q.alice_second, q.bob_job, q.url.clone());
    let carol = q.worker_token("carol").await;
    let mallory = q.worker_token("mallory").await;
    let client = Client::new(&url, Some(carol.clone())).expect("client");
    // Four cores: eight running leases at most.
    let worker = client.register_worker(&support::worker_registration("carols-box", 4)).await.expect("register").worker_id;
    let http = reqwest::Client::new();
    let raw = |path: String| {
        let (http, url, token) = (http.clone(), url.clone(), carol.clone());
        async move {
            let request =
                http.post(format!("{url}{path}")).bearer_auth(token).header("content-type", "application/json").body("{\"reports\": []}");
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("a JSON answer, even to bad input");
            (status, body)
        }
    };
    for bad in [
        format!("/api/workers/{worker}/leases?count=0"),
        format!("/api/workers/{worker}/leases?count=65"),
        format!("/api/workers/{worker}/leases?count=many"),
        format!("/api/workers/{worker}/leases"),
        format!("/api/workers/{worker}/reports?next=65"),
        "/api/workers/x/leases?count=1".to_string(),
    ] {
        let (status, body) = raw(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string() && body["message"].is_string(), "{bad}: {body}");
    }

    // Six leases in one request: the same alternation as six single leases (fair_share above).
    let first = client.leases(worker, 6, Duration::from_secs(1)).await.expect("leases");
    let jobs: Vec<i64> = first.iter().map(|l| l.job_id).collect();
    assert_eq!(jobs, [alice_first, bob_job, alice_second, bob_job, alice_first, bob_job], "{jobs:?}");
    let mut units: Vec<i64> = first.iter().map(|l| l.unit_id).collect();
    units.sort_unstable();
    units.dedup();
    assert_eq!(units.len(), 6, "no unit twice: {first:?}");
    // Eight running at most: two more, then a clear refusal.
    let more = client.leases(worker, 6, Duration::ZERO).await.expect("leases");
    assert_eq!(more.len(), 2, "{more:?}");
    let full = client.leases(worker, 1, Duration::ZERO).await.expect_err("a ninth running lease");
    assert!(full.to_string().contains("report one first"), "{full}");

    // Reports in one batch: Mallory's assignment id among Carol's is refused alone, a second
    // report of the same assignment changes nothing, the rest are recorded; eight new leases
    // come back in the same answer (room was made by the reports).
    let mallory_client = Client::new(&url, Some(mallory)).expect("client");
    let mallory_worker =
        mallory_client.register_worker(&support::worker_registration("mallorys-box", 1)).await.expect("register").worker_id;
    let stolen = mallory_client.leases(mallory_worker, 1, Duration::ZERO).await.expect("leases");
    assert_eq!(stolen.len(), 1);
    let mut batch: Vec<AssignmentReport> = first.iter().chain(&more).map(|l| noop_done(l.assignment_id)).collect();
    batch.insert(3, noop_done(stolen[0].assignment_id));
    batch.push(noop_done(first[0].assignment_id));
    let answer = client.report_batch(worker, &batch, 8, Duration::ZERO).await.expect("report batch");
    assert_eq!(answer.outcomes.len(), batch.len());
    for (sent, outcome) in batch.iter().zip(&answer.outcomes) {
        assert_eq!(sent.assignment_id, outcome.assignment_id);
    }
    assert_eq!(answer.outcomes[3].error.as_deref(), Some("AssignmentNotFound"), "{:?}", answer.outcomes[3]);
    assert!(!answer.outcomes[3].accepted);
    let last = answer.outcomes.last().expect("outcome");
    assert!(!last.accepted && last.error.is_none() && last.message.contains("already reported"), "{last:?}");
    let accepted = answer.outcomes.iter().filter(|o| o.accepted).count();
    assert_eq!(accepted, 8, "{:?}", answer.outcomes);
    assert_eq!(answer.next.len(), 8, "{:?}", answer.next);
    // Reporting while asking for leases for a worker that is not hers is refused before the
    // report is recorded; her own report of her unit still counts (Carol's batch did not touch it).
    let wrong_worker = mallory_client
        .report_and_pull(stolen[0].assignment_id, &Report::Success { output: Output::Noop }, worker, Duration::ZERO)
        .await
        .expect_err("Carol's worker");
    assert!(wrong_worker.to_string().contains("is not registered to mallory"), "{wrong_worker}");
    let hers = mallory_client.report(stolen[0].assignment_id, &Report::Success { output: Output::Noop }).await.expect("report");
    assert!(hers.accepted, "{}", hers.message);

    // The rest in batches, until every job is done: 23 units, each leased once.
    let mut held = answer.next;
    let mut leased = first.len() + more.len() + stolen.len();
    while !held.is_empty() {
        leased += held.len();
        let reports: Vec<AssignmentReport> = held.iter().map(|l| noop_done(l.assignment_id)).collect();
        let answer = client.report_batch(worker, &reports, 8, Duration::ZERO).await.expect("report batch");
        assert!(answer.outcomes.iter().all(|o| o.accepted), "{:?}", answer.outcomes);
        held = answer.next;
    }
    assert_eq!(leased, 23);
    for job in [alice_first, alice_second, bob_job] {
        let view = client.job(job).await.expect("job view");
        assert_eq!(view.state, JobState::Done, "job {job}: {view:?}");
    }
    q.server.abort();
}
