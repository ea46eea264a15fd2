//! One module per subcommand (or family of subcommands).

pub mod client;
pub mod compute;
pub mod hub;

pub mod data;
pub mod eval;
pub mod generate;
pub mod predict;
pub mod train;

/// Structured logs to stderr; `RUST_LOG` filters, `COMMONS_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env(crate::env::EnvVars::RUST_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if human_logs() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// Whether stderr is for people: with JSON logs every line there must be JSON (a log shipper
/// parses each one), so the server's greeting lines are left to the log events that say the same.
pub fn human_logs() -> bool {
    crate::env::var(crate::env::EnvVars::COMMONS_LOG_FORMAT).as_deref() != Some("json")
}

/// `HH:MM:SS` (UTC) of a unix time, for log and history lines.
pub fn clock(unix: i64) -> String {
    let seconds = unix.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}
