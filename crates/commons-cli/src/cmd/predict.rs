//! `commons predict MODEL --input FILE|TEXT`: a trained classifier's classes for one input, most
//! likely first. MODEL is a model directory or a model repository on a hub (downloaded into the
//! cache, as `commons download` does).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use commons_engine::predict::{InputModality, PredictInput, Predictor};

use super::client::HubArgs;

#[derive(Args)]
pub struct PredictArgs {
    /// A model directory written by `commons train`, or a model repository (`namespace/name`)
    /// on the hub.
    pub model: String,
    /// For an image model, an image file (PNG or JPEG); for a text model, the text, or a file
    /// holding it.
    #[arg(long)]
    pub input: String,
    /// Show only the most likely classes.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Print JSON, `[{"label", "score"}]` (the Inference API's answer), instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The repository's branch, tag or commit, when MODEL is a repository.
    #[arg(long, default_value = "main")]
    pub revision: String,
    #[command(flatten)]
    pub hub: HubArgs,
}

/// MODEL as a directory: itself, or a repository's model files fetched into the cache.
pub(crate) fn model_dir(model: &str, hub: &HubArgs, revision: &str) -> Result<PathBuf> {
    if Path::new(model).is_dir() {
        Ok(PathBuf::from(model))
    } else if model.contains('/') && !model.starts_with(['.', '/']) {
        super::client::fetch_model(hub, model, revision)
            .with_context(|| format!("{model} is not a directory; fetching it as a model repository failed"))
    } else {
        bail!("{model} is neither a model directory nor a repository (namespace/name)");
    }
}

pub fn run(args: PredictArgs) -> Result<()> {
    let dir = model_dir(&args.model, &args.hub, &args.revision)?;
    let predictor = Predictor::load(&dir).with_context(|| format!("loading the model in {}", dir.display()))?;
    let bytes;
    let text;
    let input = match predictor.modality() {
        InputModality::Image => {
            bytes = std::fs::read(&args.input)
                .with_context(|| format!("this model classifies images: cannot read the image {}", args.input))?;
            PredictInput::Image(&bytes)
        }
        InputModality::Text => {
            let path = Path::new(&args.input);
            text = if path.is_file() {
                std::fs::read_to_string(path).with_context(|| format!("reading the text in {}", path.display()))?
            } else {
                args.input.clone()
            };
            PredictInput::Text(&text)
        }
    };
    let mut classes = predictor.predict(input)?;
    if let Some(k) = args.top_k {
        classes.truncate(k.max(1));
    }
    if args.json {
        println!("{}", serde_json::to_string(&classes).context("the answer as JSON")?);
    } else {
        let width = classes.iter().map(|c| c.label.chars().count()).max().unwrap_or(5).max(5);
        println!("{:<width$}  PROBABILITY", "CLASS");
        for class in &classes {
            println!("{:<width$}  {:.4}", class.label, class.score);
        }
    }
    Ok(())
}
