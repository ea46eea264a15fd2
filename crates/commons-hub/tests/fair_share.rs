//! Fair share: one submitter's large queue does not hold another's work behind it. A real
//! coordinator on a real SQLite database, a worker speaking the protocol over HTTP.

use std::time::Duration;

use commons_client::Client;
use commons_compute::{ComputeConfig, Coordinator};
use commons_db::Scope;
use commons_protocol::{Output, PROTOCOL_VERSION, RegisterWorker, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_alternate_between_submitters_whatever_the_size_of_their_queues() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = commons_hub::AppState::open(dir.path(), None, None).await.expect("open hub");
    let alice = hub.db.create_user("alice", "Alice").await.expect("user");
    let bob = hub.db.create_user("bob", "Bob").await.expect("user");
    hub.db.create_user("carol", "Carol").await.expect("user");
    let carol = hub.db.create_token("carol", "worker", Scope::Write).await.expect("token");
    let coordinator = Coordinator::start(hub.db.clone(), hub.repos.clone(), ComputeConfig::default()).await.expect("coordinator");
    let app = commons_hub::router_with_compute(hub.clone(), coordinator.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));

    // Alice queues two jobs of 10 units, then Bob one of 3: under first-in first-out, Bob would
    // wait for all 20 of Alice's.
    let alice_first = coordinator.submit_noop(alice.id, 10).await.expect("queue");
    let alice_second = coordinator.submit_noop(alice.id, 10).await.expect("queue");
    let bob_job = coordinator.submit_noop(bob.id, 3).await.expect("queue");

    let client = Client::new(&url, Some(carol)).expect("client");
    let request = RegisterWorker {
        protocol_version: PROTOCOL_VERSION,
        name: "carols-box".into(),
        cores: 1,
        memory_bytes: 1 << 30,
        gpu: None,
        engine_version: "test".into(),
        platform: "test".into(),
        numeric_class: "test".into(),
        speed_gflops: 1.0,
    };
    let worker = client.register_worker(&request).await.expect("register").worker_id;
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
        assert_eq!(view.state, commons_protocol::JobState::Done, "job {job}: {view:?}");
    }
    server.abort();
}
