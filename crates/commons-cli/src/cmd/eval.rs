//! `commons eval MODEL_DIR --data PATH [--split test]`: prints the metrics as JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct EvalArgs {
    /// A model directory written by `commons train`.
    pub model: PathBuf,
    /// The data directory or file; without it the model's data set is fetched by name.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which split to score: train, validation or test.
    #[arg(long, default_value = "test")]
    pub split: String,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let report = commons_engine::evaluate_model_dir(&args.model, args.data.as_deref(), &args.split)
        .with_context(|| format!("evaluating {}", args.model.display()))?;
    println!("{}", serde_json::to_string_pretty(&report).context("metrics as JSON")?);
    Ok(())
}
