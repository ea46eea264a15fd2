//! One module per subcommand (or family of subcommands).

pub mod client;
pub mod hub;

pub mod data;
pub mod eval;
pub mod train;

/// Structured logs to stderr; `RUST_LOG` filters, `COMMONS_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("COMMONS_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
