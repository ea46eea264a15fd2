//! Commons engine: declarative training recipes (TOML), training on burn's autodiff with our
//! own loop, deterministic evaluation, and model directories ready to publish.
//!
//! Data flow: [`commons_recipe::recipe::load`] → [`data::prepare`] (via `commons-data`) → [`model::Plan::resolve`]
//! (all shapes checked up front) → [`train::train`] → [`output::write_model_dir`];
//! [`evaluate_model_dir`] reads such a directory back and scores a data split.

pub mod batch;
pub mod data;
pub mod embeddings;
pub mod error;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod onnx;
mod onnx_bounds;
pub mod output;
pub mod predict;
pub mod rng;
pub mod safetensors;
pub mod sample;
pub mod train;

use std::path::{Path, PathBuf};

use commons_recipe::recipe::{LoadedRecipe, Recipe};
use commons_recipe::{EvalReport, cost};

pub use error::EngineError;
pub use train::{Checkpointing, Progress};

/// Where a run's data comes from: an explicit path, or the recipe's data set fetched by name.
pub fn resolve_data_path(recipe: &Recipe, data: Option<&Path>) -> Result<PathBuf, EngineError> {
    match data {
        Some(path) => Ok(path.to_path_buf()),
        None => commons_data::fetch(&recipe.data.dataset)
            .map_err(|source| EngineError::DataSource { context: format!("fetching data set `{}`", recipe.data.dataset), source }),
    }
}

/// What `commons train` reports when it is done.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub test: EvalReport,
    pub wall_seconds: f64,
    pub epochs: usize,
    /// Floating-point operations the run took (see [`cost`]).
    pub flops: f64,
}

/// Train a network recipe (loaded, overrides applied: [`commons_recipe::recipe::load`]) on the
/// data at `data` and write the model directory to `out_dir`.
pub fn run_training(
    loaded: &LoadedRecipe,
    data: Option<&Path>,
    out_dir: &Path,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<RunSummary, EngineError> {
    run_training_checkpointed(loaded, data, out_dir, on_progress, None)
}

/// [`run_training`], checkpointing after every epoch and resuming from a checkpoint when told to.
pub fn run_training_checkpointed(
    loaded: &LoadedRecipe,
    data: Option<&Path>,
    out_dir: &Path,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
    checkpointing: Option<&mut Checkpointing<'_>>,
) -> Result<RunSummary, EngineError> {
    if loaded.recipe.kind.is_embedding() {
        return Err(EngineError::Embeddings {
            kind: loaded.recipe.name.clone(),
            reason: "embedding recipes report analogy/similarity metrics; train them with `run_recipe`".into(),
        });
    }
    let data_path = resolve_data_path(&loaded.recipe, data)?;
    let prepared = data::prepare(&loaded.recipe, &data_path, None)?;
    tracing::info!(recipe = %loaded.recipe.name, train = prepared.train.count, test = prepared.test.count, "data ready");
    let trained = train::train_checkpointed(loaded, &prepared, on_progress, checkpointing)?;
    output::write_model_dir(out_dir, loaded, &trained, &prepared.info, prepared.vocabulary.as_ref())?;
    let epochs = trained.history.len();
    let flops = cost::training_flops(&trained.plan, prepared.train.count as u64, epochs as u64, prepared.test.count as u64);
    Ok(RunSummary { out_dir: out_dir.to_path_buf(), test: trained.test, wall_seconds: trained.wall_seconds, epochs, flops })
}

/// What any recipe's run leaves: the model directory and its headline test metrics (the
/// `test` object of metrics.json).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub out_dir: PathBuf,
    pub test: serde_json::Value,
}

/// Train any recipe: networks with [`run_training`], word embeddings with `commons-embeddings`.
pub fn run_recipe(
    loaded: &LoadedRecipe,
    data: Option<&Path>,
    out_dir: &Path,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<RunOutcome, EngineError> {
    if !loaded.recipe.kind.is_embedding() {
        let summary = run_training(loaded, data, out_dir, on_progress)?;
        let test = serde_json::to_value(&summary.test).map_err(|e| EngineError::Data(format!("metrics to JSON: {e}")))?;
        return Ok(RunOutcome { out_dir: summary.out_dir, test });
    }
    let corpus_dir = resolve_data_path(&loaded.recipe, data)?;
    let started = std::time::Instant::now();
    const STEPS: usize = 1000;
    let test = embeddings::train_embeddings(loaded, &corpus_dir, out_dir, &mut |fraction, words_per_second| {
        let elapsed = started.elapsed().as_secs_f64();
        on_progress(&Progress {
            epoch: 1,
            epochs: 1,
            step: ((fraction * STEPS as f64) as usize).min(STEPS),
            steps_per_epoch: STEPS,
            loss: f64::NAN,
            samples_per_second: words_per_second.unwrap_or(0.0),
            eta_seconds: if fraction > 0.0 { elapsed * (1.0 - fraction) / fraction } else { 0.0 },
        })
    })?;
    Ok(RunOutcome { out_dir: out_dir.to_path_buf(), test })
}

/// Score a model directory on a split (`train`, `validation` or `test`) of the data at `data`
/// (or of its recipe's data set, fetched by name). Deterministic: one thread, fixed batches,
/// f64 sums in a fixed order.
pub fn evaluate_model_dir(model_dir: &Path, data: Option<&Path>, split: &str) -> Result<EvalReport, EngineError> {
    Ok(evaluate_model_dir_with_cost(model_dir, data, split, None)?.0)
}

/// [`evaluate_model_dir`] on shard `(index, count)` of the split when given, also returning the
/// floating-point operations the evaluation took.
pub fn evaluate_model_dir_with_cost(
    model_dir: &Path,
    data: Option<&Path>,
    split: &str,
    shard: Option<(usize, usize)>,
) -> Result<(EvalReport, f64), EngineError> {
    if onnx::is_onnx_dir(model_dir) {
        return onnx::evaluate_dir(model_dir, data, split, shard);
    }
    let model = output::read_model_dir(model_dir)?;
    let data_path = resolve_data_path(&model.recipe.recipe, data)?;
    let prepared = data::prepare(&model.recipe.recipe, &data_path, model.config.vocabulary.clone())?;
    let plan = model::Plan::resolve(&model.recipe, prepared.input.clone(), prepared.dims)?;
    let device = batch::default_device();
    let params = output::params_from_model(&model, &plan, &device)?;
    let whole = prepared.split(split)?;
    let sharded;
    let examples = match shard {
        Some((index, count)) => {
            sharded = whole.shard(index, count)?;
            &sharded
        }
        None => whole,
    };
    let report = eval::evaluate_deterministic(&plan, &params, examples, model.recipe.recipe.kind)?;
    Ok((report, cost::evaluation_flops(&plan, examples.count as u64)))
}

/// The class of machines whose kernels round alike: backend, architecture and the widest SIMD
/// the matrix kernels dispatch to at run time. Evaluation is bit-exact within a class; across
/// classes results may differ in the last bits, so replicas that must agree come from one class
/// (BOINC's homogeneous redundancy).
pub fn numeric_class() -> String {
    let backend = if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "flex"
    };
    format!("{backend}-{}-{}", std::env::consts::ARCH, widest_simd())
}

fn widest_simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return "avx2-fma";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "avx";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// Speed of this machine's dense kernel in GFLOP/s (a 256x256 matrix product on the training
/// backend): the speed score a worker reports when it registers.
pub fn measure_gflops(threads: usize) -> Result<f64, EngineError> {
    use burn::tensor::{Tensor, TensorData};
    const N: usize = 256;
    const REPEATS: usize = 8;
    let device = batch::default_device();
    let values: Vec<f32> = (0..N * N).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    batch::with_threads(threads.max(1), || {
        let a = Tensor::<2>::from_data(TensorData::new(values.clone(), [N, N]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(values.clone(), [N, N]), &device);
        // One untimed product warms the kernels and the allocator.
        let _ = a.clone().matmul(b.clone()).into_data();
        let started = std::time::Instant::now();
        for _ in 0..REPEATS {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        2.0 * (N * N * N * REPEATS) as f64 / seconds / 1e9
    })
}
