//! Dispatch throughput: N simulated workers in this process pull and complete no-op units from
//! a real coordinator over real HTTP on loopback, against the embedded SQLite database (WAL,
//! synchronous=FULL: every lease and every report is durable before it is answered).
//!
//! `cargo bench -p commons-hub --bench dispatch [-- N... --units M --batch B --direct]`
//! Prints, per N: units completed per second and the p50/p99 latency of a request that returned
//! leases (the first pull, then each report that carried the next leases). With `--batch B`
//! each worker asks for B leases at a time and returns B reports in one request (registering
//! B/2 cores, as a worker may hold two running leases per core). Meanwhile a hub write
//! (a token) every 20 ms shows how long the hub's own writers wait for the lock the coordinator's
//! writer keeps busy. `--direct` calls the coordinator in-process, without HTTP: the
//! coordinator's own ceiling.
//! `--postgres URL --coordinators K` runs K servers on one PostgreSQL database, the workers spread
//! over them; `--db-rtt-us T` puts the database T microseconds of round trip away (a relay in
//! this process holds each of the server's replies that long), as a database on another machine
//! is: a coordinator whose statements wait for the network, not for the CPU.
//! BOINC's published figure for one server is about 100 jobs/s (8.8 M/day).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use commons_client::Client;
use commons_compute::{ComputeConfig, Coordinator, WhenFull};
use commons_db::Scope;
use commons_protocol::{AssignmentReport, Lease, Output, PROTOCOL_VERSION, RegisterWorker, Report};

/// A TCP relay to `target` that holds every reply for `rtt` before passing it on: the round
/// trip of a database on another machine. Threads with blocking sockets, so the delay is
/// microseconds (tokio's timers count milliseconds). Returns the relay's address.
fn delaying_relay(target: std::net::SocketAddr, rtt: Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let addr = listener.local_addr().expect("relay addr");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(target) else { continue };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            // Requests go straight through.
            let (mut from_client, mut to_server) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            // Replies wait `rtt` from the moment they arrived, in order.
            let (queue, due) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
            let mut from_server = server;
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from_server.read(&mut buf) {
                    if n == 0 || queue.send((Instant::now() + rtt, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            });
            let mut to_client = client;
            std::thread::spawn(move || {
                while let Ok((at, bytes)) = due.recv() {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    if to_client.write_all(&bytes).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

struct Run {
    workers: usize,
    units: usize,
    seconds: f64,
    pull_latencies: Vec<Duration>,
    /// Latencies of the hub's own writes (token creation) made meanwhile: how long an upload or
    /// a login waits for the write lock while the coordinator is saturated.
    hub_write_latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One server of the hub: its coordinator, its HTTP task and a client of it.
struct Server {
    coordinator: Coordinator,
    client: Arc<Client>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// What one run measures.
struct Setup<'a> {
    workers: usize,
    units: usize,
    batch: usize,
    direct: bool,
    postgres: Option<&'a str>,
    coordinators: usize,
    db_rtt: Option<Duration>,
}

async fn run(setup: &Setup<'_>) -> Run {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Setup { workers, units, batch, direct, postgres, coordinators, db_rtt } = *setup;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = match postgres {
        Some(server) => {
            let name = format!("bench_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let url = commons_db::sql::create_postgres_database(server, &name).await.expect("a database for the benchmark");
            match db_rtt {
                Some(rtt) => {
                    // postgres://user@host:port/database…: the relay's port in place of the server's.
                    let (scheme, rest) = url.split_once("://").expect("database URL");
                    let (authority, path) = rest.split_once('/').expect("database URL");
                    let (user, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
                    let target = std::net::ToSocketAddrs::to_socket_addrs(host_port).expect("resolve").next().expect("address");
                    let relay = delaying_relay(target, rtt);
                    format!("{scheme}://{user}@127.0.0.1:{}/{path}", relay.port())
                }
                None => url,
            }
        }
        None => format!("sqlite://{}", dir.path().join("0").join("commons.db").display()),
    };
    let mut hubs = Vec::with_capacity(coordinators);
    for k in 0..coordinators {
        let hub = commons_hub::AppState::open_with_database(&dir.path().join(k.to_string()), Some(&database), None, None)
            .await
            .expect("open hub");
        hubs.push(hub);
    }
    let hub = hubs[0].clone();
    let owner = hub.db.create_user("bench", "bench").await.expect("user");
    let token = hub.db.create_token("bench", "bench", Scope::Write).await.expect("token");
    let mut servers = Vec::with_capacity(coordinators);
    for state in &hubs {
        let coordinator = Coordinator::start(state.db.clone(), state.repos.clone(), ComputeConfig::default()).await.expect("coordinator");
        let app = commons_hub::router_with_compute(state.clone(), coordinator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));
        let client = Arc::new(Client::new(&url, Some(token.clone())).expect("client"));
        servers.push(Server { coordinator, client, task });
    }
    let coordinator = servers[0].coordinator.clone();

    // Register every worker before the clock starts, each with the server it will talk to.
    let caller = Arc::new(hub.db.authenticate(&token).await.expect("token lookup").expect("token"));
    let mut ids = Vec::with_capacity(workers);
    for i in 0..workers {
        let client = &servers[i % coordinators].client;
        let request = RegisterWorker {
            protocol_version: PROTOCOL_VERSION,
            name: format!("sim-{i}"),
            cores: batch.div_ceil(2) as u32,
            memory_bytes: 1 << 30,
            gpu: None,
            engine_version: "bench".into(),
            platform: "bench".into(),
            numeric_class: "bench".into(),
            speed_gflops: 1.0,
        };
        ids.push(client.register_worker(&request).await.expect("register").worker_id);
    }
    coordinator.submit_noop(owner.id, units).await.expect("queue units");
    if postgres.is_some() {
        // A database in service has statistics; a fresh one gets them from autovacuum only a
        // minute later, and meanwhile PostgreSQL plans the lease queries blind.
        commons_db::sql::query("ANALYZE").execute(hub.db.pool()).await.expect("analyze");
    }

    let completed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let hub_writes = {
        let (db, completed) = (hub.db.clone(), completed.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while completed.load(Ordering::Relaxed) < units {
                let asked = Instant::now();
                db.create_token("bench", &format!("side-{}", latencies.len()), Scope::Read).await.expect("hub write");
                latencies.push(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };
    let mut tasks = Vec::with_capacity(workers);
    for (i, id) in ids.into_iter().enumerate() {
        let server = &servers[i % coordinators];
        let client = server.client.clone();
        let completed = completed.clone();
        let coordinator = server.coordinator.clone();
        let caller = caller.clone();
        tasks.push(tokio::spawn(async move {
            // As `commons worker` does: pull once, then report each result and receive the next
            // leases in the same request.
            let mut latencies = Vec::new();
            let mut held: Vec<Lease> = Vec::new();
            while completed.load(Ordering::Relaxed) < units {
                if held.is_empty() {
                    let asked = Instant::now();
                    held = if direct {
                        coordinator.leases(&caller, id, batch, Duration::from_secs(1), WhenFull::Refuse).await.expect("pull")
                    } else {
                        client.leases(id, batch, Duration::from_secs(1)).await.expect("pull")
                    };
                    if held.is_empty() {
                        continue;
                    }
                    latencies.push(asked.elapsed());
                }
                let reports: Vec<AssignmentReport> = held
                    .drain(..)
                    .map(|lease| AssignmentReport { assignment_id: lease.assignment_id, report: Report::Success { output: Output::Noop } })
                    .collect();
                let asked = Instant::now();
                let done = reports.len();
                held = if direct {
                    let answers = coordinator
                        .reports(&caller, reports.into_iter().map(|r| (r.assignment_id, r.report)).collect())
                        .await
                        .expect("report");
                    for answer in answers {
                        let answer = answer.expect("report");
                        assert!(answer.accepted, "{}", answer.message);
                    }
                    coordinator.leases(&caller, id, batch, Duration::ZERO, WhenFull::Nothing).await.expect("pull")
                } else {
                    let answer = client.report_batch(id, &reports, batch, Duration::ZERO).await.expect("report");
                    for outcome in &answer.outcomes {
                        assert!(outcome.accepted, "{}", outcome.message);
                    }
                    answer.next
                };
                completed.fetch_add(done, Ordering::Relaxed);
                if !held.is_empty() {
                    latencies.push(asked.elapsed());
                }
            }
            latencies
        }));
    }
    let mut pull_latencies = Vec::new();
    for task in tasks {
        pull_latencies.extend(task.await.expect("worker task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    pull_latencies.sort();
    let mut hub_write_latencies = hub_writes.await.expect("hub writes");
    hub_write_latencies.sort();
    for server in servers {
        server.task.abort();
    }
    Run { workers, units: completed.load(Ordering::Relaxed), seconds, pull_latencies, hub_write_latencies }
}

fn main() {
    let mut sizes = Vec::new();
    let mut units = 3000usize;
    let mut direct = false;
    let mut batch = 1usize;
    let mut postgres: Option<String> = None;
    let mut coordinators = 1usize;
    let mut db_rtt = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--units" => units = args.next().and_then(|v| v.parse().ok()).expect("--units M"),
            "--batch" => batch = args.next().and_then(|v| v.parse().ok()).filter(|b| *b >= 1).expect("--batch B (at least 1)"),
            "--bench" => {}
            "--direct" => direct = true,
            "--postgres" => postgres = Some(args.next().expect("--postgres URL")),
            "--db-rtt-us" => {
                db_rtt = Some(Duration::from_micros(args.next().and_then(|v| v.parse().ok()).expect("--db-rtt-us MICROSECONDS")))
            }
            "--coordinators" => {
                coordinators = args.next().and_then(|v| v.parse().ok()).filter(|k| *k >= 1).expect("--coordinators K (at least 1)")
            }
            other => {
                if let Ok(n) = other.parse() {
                    sizes.push(n)
                }
            }
        }
    }
    if sizes.is_empty() {
        sizes = vec![10, 100, 1000];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let over = if direct { "direct calls, no HTTP" } else { "HTTP" };
    let engine = match (&postgres, db_rtt) {
        (Some(_), Some(rtt)) => format!("PostgreSQL {} µs of round trip away", rtt.as_micros()),
        (Some(_), None) => "PostgreSQL".to_string(),
        (None, _) => "SQLite WAL, synchronous=FULL".to_string(),
    };
    println!(
        "dispatch over {over}, {batch} lease(s) per request, {coordinators} coordinator(s): simulated workers pull and complete no-op units ({engine}); a hub write every 20 ms meanwhile"
    );
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>12} {:>12} {:>14} {:>10}",
        "workers", "units", "seconds", "units/s", "lease p50 ms", "lease p99 ms", "hub write p99", "vs BOINC"
    );
    for workers in sizes {
        let setup = Setup { workers, units, batch, direct, postgres: postgres.as_deref(), coordinators, db_rtt };
        let r = runtime.block_on(run(&setup));
        let rate = r.units as f64 / r.seconds;
        println!(
            "{:>8} {:>8} {:>10.2} {:>10.0} {:>12.2} {:>12.2} {:>11.2} ms {:>9.1}x",
            r.workers,
            r.units,
            r.seconds,
            rate,
            percentile(&r.pull_latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&r.pull_latencies, 0.99).as_secs_f64() * 1e3,
            percentile(&r.hub_write_latencies, 0.99).as_secs_f64() * 1e3,
            rate / 100.0
        );
    }
}
