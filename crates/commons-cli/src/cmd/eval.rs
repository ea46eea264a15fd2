//! `commons eval MODEL_DIR --data PATH [--split test]`: prints the metrics as JSON (a native
//! model directory or an ONNX one). `commons export-onnx MODEL_DIR --out DIR` writes a native
//! dense or convolutional model as ONNX.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct EvalArgs {
    /// A model directory written by `commons train`, or one holding `model.onnx` and the
    /// `config.json` whose recipe names its data.
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

#[derive(Args)]
pub struct ExportOnnxArgs {
    /// A model directory written by `commons train` (a dense or convolutional classifier).
    pub model: PathBuf,
    /// Where to write `model.onnx` and its `config.json`.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn export_onnx(args: ExportOnnxArgs) -> anyhow::Result<()> {
    let model = commons_engine::output::read_model_dir(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let path = commons_engine::onnx::export_model_dir(&model, &args.out).with_context(|| format!("exporting {}", args.model.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
