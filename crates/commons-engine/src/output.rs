//! The model directory a run leaves behind, ready to publish as a model repo:
//! `model.safetensors`, `config.json`, `metrics.json`, `README.md` (model card with YAML
//! front matter) and `training_curves.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::{NamedTensor, Params, Plan};
pub use crate::safetensors::{read_safetensors, safetensors_bytes};
use crate::train::{EpochMetrics, TrainedModel};
use commons_recipe::EvalReport;
use commons_recipe::model_dir::{DatasetInfo, ModelConfig, Vocabulary};
use commons_recipe::recipe::LoadedRecipe;

pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsFile {
    pub epochs: Vec<EpochMetrics>,
    pub test: EvalReport,
    pub wall_seconds: f64,
    pub train_samples_per_second: f64,
    pub seconds_per_epoch: f64,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    std::fs::write(path, bytes).map_err(|e| EngineError::io(format!("writing {}", path.display()), e))
}

/// Write the whole model directory for a finished run.
pub fn write_model_dir(
    dir: &Path,
    loaded: &LoadedRecipe,
    trained: &TrainedModel,
    dataset: &DatasetInfo,
    vocabulary: Option<&Vocabulary>,
) -> Result<(), EngineError> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(format!("creating {}", dir.display()), e))?;
    let recipe = &loaded.recipe;
    write(&dir.join("model.safetensors"), &safetensors_bytes(&trained.params.named_tensors(&trained.plan))?)?;
    let recipe_toml = toml::to_string(recipe).map_err(|e| EngineError::Data(format!("serialising the recipe: {e}")))?;
    let config = ModelConfig {
        engine: "commons-engine".into(),
        engine_version: ENGINE_VERSION.into(),
        recipe_name: recipe.name.clone(),
        recipe_toml,
        recipe: serde_json::to_value(recipe).unwrap_or_default(),
        seed: recipe.training.seed,
        threads: recipe.training.threads,
        hyperparameters: serde_json::json!({
            "optimizer": recipe.training.optimizer,
            "learning_rate": recipe.training.optimizer.lr(),
            "schedule": recipe.training.schedule,
            "batch_size": recipe.training.batch_size,
            "epochs": recipe.training.epochs,
            "loss": recipe.training.loss,
            "grad_clip_norm": recipe.training.grad_clip_norm,
            "parameters": trained.params.named_tensors(&trained.plan).iter().map(|t| t.values.len()).sum::<usize>(),
        }),
        dataset: dataset.clone(),
        layer_shapes: trained.plan.shapes.clone(),
        input: format!("{:?}", trained.plan.input),
        vocabulary: vocabulary.cloned(),
    };
    write(&dir.join("config.json"), &serde_json::to_vec_pretty(&config).unwrap_or_default())?;
    let epochs = trained.history.len().max(1) as f64;
    let metrics = MetricsFile {
        epochs: trained.history.clone(),
        test: trained.test.clone(),
        wall_seconds: trained.wall_seconds,
        train_samples_per_second: trained.train_samples_per_second,
        seconds_per_epoch: trained.history.iter().map(|e| e.seconds).sum::<f64>() / epochs,
    };
    write(&dir.join("metrics.json"), &serde_json::to_vec_pretty(&metrics).unwrap_or_default())?;
    write(&dir.join("training_curves.svg"), training_curves_svg(&trained.history).as_bytes())?;
    write(&dir.join("README.md"), model_card(loaded, &metrics, dataset)?.as_bytes())?;
    Ok(())
}

#[derive(Serialize)]
struct CardMetric {
    name: String,
    value: f64,
}

#[derive(Serialize)]
struct CardFrontMatter<'a> {
    license: &'a str,
    library_name: &'a str,
    pipeline_tag: &'a str,
    tags: Vec<&'a str>,
    datasets: Vec<&'a str>,
    base_recipe: &'a str,
    metrics: Vec<CardMetric>,
}

fn model_card(loaded: &LoadedRecipe, metrics: &MetricsFile, dataset: &DatasetInfo) -> Result<String, EngineError> {
    let recipe = &loaded.recipe;
    let mut card_metrics = vec![
        CardMetric { name: "accuracy".into(), value: metrics.test.accuracy },
        CardMetric { name: "loss".into(), value: metrics.test.loss },
        CardMetric { name: "macro_f1".into(), value: metrics.test.macro_f1 },
    ];
    if let Some(perplexity) = metrics.test.perplexity {
        card_metrics.push(CardMetric { name: "perplexity".into(), value: perplexity });
    }
    let front = CardFrontMatter {
        license: &recipe.license,
        library_name: "commons-engine",
        tags: vec!["commons", loaded.pipeline_tag()],
        pipeline_tag: loaded.pipeline_tag(),
        datasets: vec![&dataset.name],
        base_recipe: &recipe.name,
        metrics: card_metrics,
    };
    let front = commons_card::front_matter(&front).map_err(|e| EngineError::Data(format!("model card: {e}")))?;
    let mut card = format!("{front}\n# {}\n\n{}\n\n", recipe.name, recipe.description);
    let _ = writeln!(
        card,
        "Trained with `commons train {}` (engine {ENGINE_VERSION}, seed {}, {} threads).\n",
        recipe.name, recipe.training.seed, recipe.training.threads
    );
    let _ = writeln!(card, "## Test metrics\n\n| metric | value |\n|---|---|");
    let _ = writeln!(
        card,
        "| accuracy | {:.4} |\n| loss | {:.4} |\n| macro F1 | {:.4} |",
        metrics.test.accuracy, metrics.test.loss, metrics.test.macro_f1
    );
    if let Some(perplexity) = metrics.test.perplexity {
        let _ = writeln!(card, "| perplexity | {perplexity:.3} |");
    }
    let _ = writeln!(card, "\nWall time {:.1} s, {:.0} training samples/s.\n", metrics.wall_seconds, metrics.train_samples_per_second);
    let _ = writeln!(card, "## Training curves\n\n![training curves](training_curves.svg)\n\n## Data\n\n`{}`:\n", dataset.name);
    for (file, sha) in &dataset.files {
        let _ = writeln!(card, "- `{file}` sha256 `{sha}`");
    }
    Ok(card)
}

/// Loss (left axis) and accuracy (right axis, 0..1) per epoch, train solid, validation dashed.
pub fn training_curves_svg(history: &[EpochMetrics]) -> String {
    let (width, height) = (640.0, 360.0);
    let (left, right, top, bottom) = (60.0, 580.0, 30.0, 310.0);
    let epochs = history.len().max(1);
    let max_loss = history
        .iter()
        .flat_map(|e| [Some(e.train_loss), e.validation_loss])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.05;
    let x_of =
        |epoch: usize| if epochs == 1 { (left + right) / 2.0 } else { left + (right - left) * (epoch - 1) as f64 / (epochs - 1) as f64 };
    let y_loss = |v: f64| bottom - (bottom - top) * (v / max_loss);
    let y_acc = |v: f64| bottom - (bottom - top) * v.clamp(0.0, 1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>");
    let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>");
    let _ = writeln!(svg, "<line x1=\"{right}\" y1=\"{top}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>");
    for tick in 0..=4 {
        let fraction = tick as f64 / 4.0;
        let y = bottom - (bottom - top) * fraction;
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.3}</text>", left - 4.0, y + 4.0, max_loss * fraction);
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{:.1}\">{:.2}</text>", right + 4.0, y + 4.0, fraction);
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#eee\"/>");
    }
    for epoch in 1..=epochs {
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{epoch}</text>", x_of(epoch), bottom + 16.0);
    }
    let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>", (left + right) / 2.0, bottom + 34.0);
    let _ = writeln!(
        svg,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">loss</text>",
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" transform=\"rotate(90 {} {})\" text-anchor=\"middle\">accuracy</text>",
        width - 14.0,
        (top + bottom) / 2.0,
        width - 14.0,
        (top + bottom) / 2.0
    );
    // (label, colour, dash pattern, one value per epoch, whether it is a loss)
    type Series<'a> = (&'a str, &'a str, &'a str, Vec<Option<f64>>, bool);
    let series: [Series; 4] = [
        ("train loss", "#d62728", "", history.iter().map(|e| Some(e.train_loss)).collect(), true),
        ("validation loss", "#d62728", "6,4", history.iter().map(|e| e.validation_loss).collect(), true),
        ("train accuracy", "#1f77b4", "", history.iter().map(|e| Some(e.train_accuracy)).collect(), false),
        ("validation accuracy", "#1f77b4", "6,4", history.iter().map(|e| e.validation_accuracy).collect(), false),
    ];
    let mut legend_y = top + 6.0;
    for (label, colour, dash, values, is_loss) in series {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.filter(|v| v.is_finite()).map(|v| format!("{:.1},{:.1}", x_of(i + 1), if is_loss { y_loss(v) } else { y_acc(v) }))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" ")
        );
        for point in &points {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{colour}\"/>");
        }
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{legend_y}\" x2=\"{}\" y2=\"{legend_y}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
            left + 12.0,
            left + 36.0
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{label}</text>", left + 40.0, legend_y + 4.0);
        legend_y += 14.0;
    }
    svg.push_str("</svg>\n");
    svg
}

/// A trained model read back from its directory.
pub struct LoadedModel {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub recipe: LoadedRecipe,
    pub tensors: Vec<NamedTensor>,
}

pub fn read_model_dir(dir: &Path) -> Result<LoadedModel, EngineError> {
    let config = std::fs::read(dir.join("config.json"))
        .map_err(|e| EngineError::ModelDir { dir: dir.to_path_buf(), reason: format!("cannot read config.json: {e}") })?;
    let weights = std::fs::read(dir.join("model.safetensors"))
        .map_err(|e| EngineError::io(format!("reading {}", dir.join("model.safetensors").display()), e))?;
    model_from_bytes(&config, &weights, dir)
}

/// A model directory's `config.json` and recipe without weights (an ONNX model's directory,
/// whose network is its graph).
pub fn read_model_config(dir: &Path) -> Result<LoadedModel, EngineError> {
    let config = std::fs::read(dir.join("config.json"))
        .map_err(|e| EngineError::ModelDir { dir: dir.to_path_buf(), reason: format!("cannot read config.json: {e}") })?;
    model_config_from_bytes(&config, dir)
}

/// [`read_model_config`] from the bytes of a `config.json` (a model repository's, read by a
/// server); `dir` names where they came from in errors.
pub fn model_config_from_bytes(config: &[u8], dir: &Path) -> Result<LoadedModel, EngineError> {
    let config: ModelConfig = serde_json::from_slice(config)
        .map_err(|e| EngineError::ModelDir { dir: dir.to_path_buf(), reason: format!("config.json: {e}") })?;
    let recipe = commons_recipe::recipe::parse(&config.recipe_toml, &format!("{}/config.json recipe", dir.display()))?;
    Ok(LoadedModel { dir: dir.to_path_buf(), config, recipe, tensors: Vec::new() })
}

/// A trained model from the bytes of its `config.json` and `model.safetensors` (a model
/// repository's files, read by a server); `dir` names where they came from in errors.
pub fn model_from_bytes(config: &[u8], weights: &[u8], dir: &Path) -> Result<LoadedModel, EngineError> {
    let tensors = crate::safetensors::tensors_from_bytes(weights, &dir.join("model.safetensors"))?;
    Ok(LoadedModel { tensors, ..model_config_from_bytes(config, dir)? })
}

/// Rebuild a model's parameters for `plan` on `device`.
pub fn params_from_model(model: &LoadedModel, plan: &Plan, device: &burn::tensor::Device) -> Result<Params, EngineError> {
    Params::from_named(plan, &model.tensors, device).map_err(|reason| EngineError::ModelDir { dir: model.dir.clone(), reason })
}
