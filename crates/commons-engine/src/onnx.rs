//! ONNX: Commons' dense and convolutional networks written out as ONNX graphs, and ONNX models
//! trained elsewhere (PyTorch, TensorFlow, or ours) run here through tract (pure Rust), so they
//! are evaluated, ranked and asked like a native model.
//!
//! An ONNX model directory holds `model.onnx` and the `config.json` a native one holds: the
//! recipe there says which data the model reads and how it is scaled (the network itself comes
//! from the graph). The graph takes one input, floats `[batch, ...input_shape]` (images, tables)
//! or, for a recipe that reads text, int64 token ids `[batch, sequence_length]` in the
//! vocabulary of `config.json`; it gives one output `[batch, classes]`: scores (logits), or
//! probabilities when its last operation is a `Softmax`. What we export ends in the logits (the recipe's final softmax is left to the
//! reader, as PyTorch exports usually are).

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTensor, Tensor, TypedModel, TypedSimplePlan, tvec,
};
use tract_onnx::tract_core::ops::Cost;

use crate::error::EngineError;
use crate::eval::{EVAL_BATCH, Tally, argmax};
use crate::model::{NamedTensor, Plan, PlannedLayer};
use crate::output::LoadedModel;
use commons_recipe::EvalReport;
use commons_recipe::plan::{DataDims, InputKind};
use commons_recipe::recipe::{ActivationKind, RecipeKind};

/// The graph's file in a model directory.
pub const ONNX_FILE: &str = "model.onnx";
/// Largest ONNX file read (a model repository's file; weights included).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;
/// The operator set the export uses (every operator it writes has had its current form since).
const OPSET: i64 = 13;
const INPUT: &str = "input";
const OUTPUT: &str = "logits";
/// Most bytes the tensors of one run of a graph may take together (see `onnx_bounds`): a batch
/// that would take more is cut until it fits, a graph that takes more for one input is refused.
pub const MAX_RUN_BYTES: u128 = 1 << 30;

fn onnx_error(context: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Onnx(format!("{context}: {e}"))
}

/// Whether `dir` holds an ONNX model (and no native weights, which would be read first).
pub fn is_onnx_dir(dir: &Path) -> bool {
    dir.join(ONNX_FILE).is_file() && !dir.join("model.safetensors").is_file()
}

/// The plan of a model that reads features (images, tables), from its config alone.
pub(crate) fn feature_plan(model: &LoadedModel) -> Result<Plan, EngineError> {
    let recipe = &model.recipe.recipe;
    let refuse = |reason: String| EngineError::ModelDir { dir: model.dir.clone(), reason };
    if recipe.kind != RecipeKind::Classification || recipe.data.input_shape.is_empty() {
        return Err(refuse(format!(
            "`{}` is not a classifier of features with an input_shape: ONNX export covers dense and convolutional classifiers",
            recipe.name
        )));
    }
    let num_classes = recipe
        .data
        .num_classes
        .or_else(|| model.config.layer_shapes.last().and_then(|s| s.last().copied()))
        .ok_or_else(|| refuse("the model does not say how many classes it has".into()))?;
    Ok(Plan::resolve(&model.recipe, InputKind::Features(recipe.data.input_shape.clone()), DataDims { num_classes, vocab_size: 0 })?)
}

/// Writes `model`'s network to `out/model.onnx`, with its `config.json` beside it, so the
/// directory evaluates like the one it came from. Dense, convolution, max-pooling, flatten,
/// dropout (dropped: it only acts in training) and the activations; embeddings and recurrent
/// layers are refused.
pub fn export_model_dir(model: &LoadedModel, out: &Path) -> Result<PathBuf, EngineError> {
    let plan = feature_plan(model)?;
    let bytes = export(&plan, &model.tensors, &model.config.recipe_name)?;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(format!("creating {}", out.display()), e))?;
    let path = out.join(ONNX_FILE);
    std::fs::write(&path, bytes).map_err(|e| EngineError::io(format!("writing {}", path.display()), e))?;
    let config = serde_json::to_vec_pretty(&model.config).map_err(|e| onnx_error("config.json", e))?;
    std::fs::write(out.join("config.json"), config).map_err(|e| EngineError::io(format!("writing {}", out.display()), e))?;
    Ok(path)
}

/// The ONNX bytes of `plan` with the weights in `tensors` (named `layers.<i>.weight|bias`).
pub fn export(plan: &Plan, tensors: &[NamedTensor], name: &str) -> Result<Vec<u8>, EngineError> {
    let InputKind::Features(input_shape) = &plan.input else {
        return Err(EngineError::Onnx("only networks that read features (images, tables) are exported to ONNX".into()));
    };
    let mut graph = pb::GraphProto { name: name.to_string(), ..Default::default() };
    graph.input.push(value_info(INPUT, input_shape));
    let weights = |index: usize, part: &str| -> Result<pb::TensorProto, EngineError> {
        let wanted = format!("layers.{index}.{part}");
        let tensor = tensors.iter().find(|t| t.name == wanted).ok_or_else(|| EngineError::Onnx(format!("tensor {wanted} is missing")))?;
        Ok(pb::TensorProto {
            name: wanted,
            dims: tensor.shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: tensor.values.iter().map(|&v| v as f32).collect(),
            ..Default::default()
        })
    };
    let mut current = INPUT.to_string();
    let last = plan.layers.len().saturating_sub(1);
    for (index, layer) in plan.layers.iter().enumerate() {
        let out = format!("layers.{index}.out");
        let node = |op: &str, inputs: Vec<String>, attributes: Vec<pb::AttributeProto>| pb::NodeProto {
            name: format!("layers.{index}"),
            op_type: op.to_string(),
            input: inputs,
            output: vec![out.clone()],
            attribute: attributes,
            ..Default::default()
        };
        let made = match *layer {
            PlannedLayer::Flatten => node("Flatten", vec![current.clone()], vec![int("axis", 1)]),
            PlannedLayer::Dropout { .. } => node("Identity", vec![current.clone()], Vec::new()),
            PlannedLayer::Activation(ActivationKind::Softmax) if index == last => node("Identity", vec![current.clone()], Vec::new()),
            PlannedLayer::Activation(kind) => {
                let op = match kind {
                    ActivationKind::Relu => "Relu",
                    ActivationKind::Sigmoid => "Sigmoid",
                    ActivationKind::Tanh => "Tanh",
                    ActivationKind::Softmax => "Softmax",
                };
                node(op, vec![current.clone()], Vec::new())
            }
            PlannedLayer::Dense { .. } => {
                // `x W + b` with `W` stored `[inputs, units]`: MatMul then Add, valid for any
                // leading axes (Gemm would take only matrices).
                let (weight, bias) = (weights(index, "weight")?, weights(index, "bias")?);
                let product = format!("layers.{index}.product");
                graph.node.push(pb::NodeProto {
                    name: format!("layers.{index}.matmul"),
                    op_type: "MatMul".into(),
                    input: vec![current.clone(), weight.name.clone()],
                    output: vec![product.clone()],
                    ..Default::default()
                });
                let add = vec![product, bias.name.clone()];
                graph.initializer.extend([weight, bias]);
                node("Add", add, Vec::new())
            }
            PlannedLayer::Conv2d { kernel, stride, padding, .. } => {
                let (weight, bias) = (weights(index, "weight")?, weights(index, "bias")?);
                let inputs = vec![current.clone(), weight.name.clone(), bias.name.clone()];
                graph.initializer.extend([weight, bias]);
                let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
                node("Conv", inputs, vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s]), ints("pads", &[p, p, p, p])])
            }
            PlannedLayer::MaxPool2d { pool, stride } => {
                let (k, s) = (pool as i64, stride as i64);
                node("MaxPool", vec![current.clone()], vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s])])
            }
            PlannedLayer::Embedding { .. } | PlannedLayer::Recurrent { .. } => {
                return Err(EngineError::Onnx("embedding and recurrent layers are not exported to ONNX yet".into()));
            }
        };
        graph.node.push(made);
        current = out;
    }
    graph.node.push(pb::NodeProto {
        name: "output".into(),
        op_type: "Identity".into(),
        input: vec![current],
        output: vec![OUTPUT.into()],
        ..Default::default()
    });
    graph.output.push(value_info(OUTPUT, plan.output_shape()));
    let model = pb::ModelProto {
        // IR version 7 goes with operator set 13.
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "commons".into(),
        producer_version: crate::output::ENGINE_VERSION.into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::Int as i32, i: value, ..Default::default() }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A float tensor `[batch, ...shape]`, the batch axis named.
pub(crate) fn value_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let batch = Dimension { value: Some(Value::DimParam("batch".into())), ..Default::default() };
    let dims =
        std::iter::once(batch).chain(shape.iter().map(|&d| Dimension { value: Some(Value::DimValue(d as i64)), ..Default::default() }));
    let tensor = pb::type_proto::Tensor {
        elem_type: pb::tensor_proto::DataType::Float as i32,
        shape: Some(pb::TensorShapeProto { dim: dims.collect() }),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

/// What an ONNX classifier reads, after its batch axis.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphInput {
    /// Floats of this shape.
    Features(Vec<usize>),
    /// `sequence_length` token ids (int64).
    Tokens(usize),
}

impl GraphInput {
    fn dims(&self) -> Vec<usize> {
        match self {
            GraphInput::Features(shape) => shape.clone(),
            GraphInput::Tokens(length) => vec![*length],
        }
    }
}

/// An ONNX classifier, compiled for batches of a fixed size (a shorter batch is padded).
pub struct OnnxClassifier {
    plan: std::sync::Arc<TypedSimplePlan>,
    batch: usize,
    input: GraphInput,
    classes: usize,
    /// The graph ends in a `Softmax`: its outputs are probabilities, not scores.
    gives_probabilities: bool,
    flops_per_input: f64,
}

impl OnnxClassifier {
    /// Reads `path` and compiles it for float inputs `[batch, ...input_shape]`.
    pub fn load(path: &Path, input_shape: &[usize], batch: usize) -> Result<Self, EngineError> {
        Self::load_reading(path, &GraphInput::Features(input_shape.to_vec()), batch)
    }

    /// Reads `path` and compiles it for `input` after a batch axis of `batch`.
    pub fn load_reading(path: &Path, input: &GraphInput, batch: usize) -> Result<Self, EngineError> {
        let size = std::fs::metadata(path).map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?.len();
        if size > MAX_ONNX_BYTES {
            return Err(EngineError::Onnx(format!("{} is {size} bytes; at most {MAX_ONNX_BYTES} are read", path.display())));
        }
        let bytes = std::fs::read(path).map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
        Self::from_bytes_reading(&bytes, input, batch)
    }

    /// An ONNX file's bytes (a model repository's `model.onnx`, read by a server), compiled for
    /// float inputs `[batch, ...input_shape]`.
    pub fn from_bytes(bytes: &[u8], input_shape: &[usize], batch: usize) -> Result<Self, EngineError> {
        Self::from_bytes_reading(bytes, &GraphInput::Features(input_shape.to_vec()), batch)
    }

    /// [`Self::from_bytes`] for `input` after a batch axis of `batch`.
    pub fn from_bytes_reading(bytes: &[u8], input: &GraphInput, batch: usize) -> Result<Self, EngineError> {
        let proto = pb::ModelProto::decode(bytes).map_err(|e| onnx_error("not an ONNX model", e))?;
        let graph = proto.graph.as_ref().ok_or_else(|| EngineError::Onnx("the ONNX model has no graph".into()))?;
        if graph.output.len() != 1 {
            return Err(EngineError::Onnx(format!("a classifier has one output; this graph has {}", graph.output.len())));
        }
        // Before tract reads it: reading evaluates whatever is computed from constants alone.
        crate::onnx_bounds::check_graph(graph)?;
        let output = &graph.output[0].name;
        let gives_probabilities = graph.node.iter().any(|n| n.output.contains(output) && n.op_type == "Softmax");
        let onnx = tract_onnx::onnx();
        let model = onnx.model_for_proto_model(&proto).map_err(|e| onnx_error("reading the graph", e))?;
        let mut dims = vec![batch];
        dims.extend(input.dims());
        let datum = match input {
            GraphInput::Features(_) => f32::datum_type(),
            GraphInput::Tokens(_) => i64::datum_type(),
        };
        let fact = InferenceFact::dt_shape(datum, dims.as_slice());
        let model = model.with_input_fact(0, fact).map_err(|e| onnx_error("the model's input", e))?;
        let typed: TypedModel = model.into_typed().map_err(|e| onnx_error("the graph's shapes", e))?;
        let run_bytes = crate::onnx_bounds::activation_bytes(&typed)?;
        if run_bytes > MAX_RUN_BYTES {
            let per_input = run_bytes.div_ceil(batch as u128);
            if batch > 1 && per_input <= MAX_RUN_BYTES {
                let fits = usize::try_from(MAX_RUN_BYTES / per_input).unwrap_or(1).max(1);
                return Self::from_bytes_reading(bytes, input, fits);
            }
            return Err(EngineError::Onnx(format!(
                "one run of this graph for inputs {dims:?} computes tensors of {run_bytes} bytes; at most {MAX_RUN_BYTES} are allowed"
            )));
        }
        let output_fact = typed.output_fact(0).map_err(|e| onnx_error("the model's output", e))?.clone();
        let classes = match output_fact.shape.as_concrete() {
            Some([rows, classes]) if *rows == batch => *classes,
            other => {
                return Err(EngineError::Onnx(format!(
                    "a classifier's output is [batch, classes]; for inputs {dims:?} this graph gives {other:?}"
                )));
            }
        };
        let flops_per_input = fma_count(&typed)? * 2.0 / batch as f64;
        let plan = typed
            .into_decluttered()
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| onnx_error("compiling the graph", e))?;
        Ok(Self { plan, batch, input: input.clone(), classes, gives_probabilities, flops_per_input })
    }

    /// Inputs per run: the batch asked for, or fewer when that many would not fit
    /// [`MAX_RUN_BYTES`].
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn flops_per_input(&self) -> f64 {
        self.flops_per_input
    }

    /// What the graph reads after its batch axis.
    pub fn input(&self) -> &GraphInput {
        &self.input
    }

    /// Log-probabilities `[rows, classes]` of `rows` float inputs laid end to end in `features`.
    pub fn log_probabilities(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
        if !matches!(self.input, GraphInput::Features(_)) {
            return Err(EngineError::Onnx("this graph reads token ids, not floats".into()));
        }
        self.run_rows(features, rows)
    }

    /// Log-probabilities `[rows, classes]` of `rows` token sequences laid end to end in `tokens`.
    pub fn log_probabilities_of_tokens(&self, tokens: &[u32], rows: usize) -> Result<Vec<f32>, EngineError> {
        if !matches!(self.input, GraphInput::Tokens(_)) {
            return Err(EngineError::Onnx("this graph reads floats, not token ids".into()));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        self.run_rows(&ids, rows)
    }

    /// Log-probabilities of the examples of a split, whichever input the graph reads.
    pub fn log_probabilities_of(&self, examples: &crate::data::Examples) -> Result<Vec<f32>, EngineError> {
        match self.input {
            GraphInput::Features(_) => self.log_probabilities(&examples.features, examples.count),
            GraphInput::Tokens(_) => self.log_probabilities_of_tokens(&examples.tokens, examples.count),
        }
    }

    /// Runs the graph over `rows` inputs laid end to end in `values`, a batch at a time (the
    /// last one padded with zeros).
    fn run_rows<T: Datum + Copy + Default>(&self, values: &[T], rows: usize) -> Result<Vec<f32>, EngineError> {
        let dims_after_batch = self.input.dims();
        let width: usize = dims_after_batch.iter().product();
        if values.len() != rows * width {
            return Err(EngineError::Onnx(format!("{} values for {rows} inputs of {width}", values.len())));
        }
        let mut out = Vec::with_capacity(rows * self.classes);
        for start in (0..rows).step_by(self.batch) {
            let take = (rows - start).min(self.batch);
            let mut batch = vec![T::default(); self.batch * width];
            batch[..take * width].copy_from_slice(&values[start * width..(start + take) * width]);
            let mut dims = vec![self.batch];
            dims.extend_from_slice(&dims_after_batch);
            let input = Tensor::from_shape(&dims, &batch).map_err(|e| onnx_error("the input", e))?;
            let mut result = self.plan.run(tvec!(input.into())).map_err(|e| onnx_error("running the model", e))?;
            let output = result.remove(0).into_tensor();
            let scores = output.to_plain_array_view::<f32>().map_err(|e| onnx_error("the model's output is not f32", e))?;
            let scores: Vec<f32> = scores.iter().copied().collect();
            for row in scores.chunks(self.classes).take(take) {
                out.extend(self.row_log_probabilities(row));
            }
        }
        Ok(out)
    }

    fn row_log_probabilities(&self, row: &[f32]) -> Vec<f32> {
        if self.gives_probabilities {
            return row.iter().map(|p| p.max(f32::MIN_POSITIVE).ln()).collect();
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let log_sum = max + sum.ln();
        row.iter().map(|v| v - log_sum).collect()
    }
}

/// Multiply-adds of one run of `model` (tract's own count per operation).
fn fma_count(model: &TypedModel) -> Result<f64, EngineError> {
    let mut total = 0f64;
    for node in model.nodes() {
        let inputs = model.node_input_facts(node.id).map_err(|e| onnx_error("counting operations", e))?;
        for (cost, count) in node.op.cost(&inputs).map_err(|e| onnx_error("counting operations", e))? {
            if let (Cost::FMA(_), Ok(n)) = (cost, count.to_i64()) {
                total += n as f64;
            }
        }
    }
    Ok(total)
}

/// Scores the ONNX model in `dir` on a split of its recipe's data (or of `data`), as
/// [`crate::evaluate_model_dir_with_cost`] does a native one: fixed batches, one thread, the
/// same metrics. Also returns the floating-point operations it took.
pub(crate) fn evaluate_dir(
    dir: &Path,
    data: Option<&Path>,
    split: &str,
    shard: Option<(usize, usize)>,
) -> Result<(EvalReport, f64), EngineError> {
    let (model, examples, input, _) = onnx_examples(dir, data, split, shard)?;
    let classifier = crate::batch::with_threads(1, || OnnxClassifier::load_reading(&dir.join(ONNX_FILE), &input, EVAL_BATCH))??;
    let log_probs = crate::batch::with_threads(1, || classifier.log_probabilities_of(&examples))??;
    let mut tally = Tally::new(classifier.classes());
    tally.add(&log_probs, &examples.targets)?;
    Ok((tally.report(examples.count, model.recipe.recipe.kind), classifier.flops_per_input() * examples.count as f64))
}

/// The class the model in `dir` (native or ONNX) gives each example of a split, in order.
pub fn predicted_classes(dir: &Path, data: Option<&Path>, split: &str) -> Result<Vec<u32>, EngineError> {
    if is_onnx_dir(dir) {
        let (_, examples, input, _) = onnx_examples(dir, data, split, None)?;
        let classifier = OnnxClassifier::load_reading(&dir.join(ONNX_FILE), &input, EVAL_BATCH)?;
        let log_probs = classifier.log_probabilities_of(&examples)?;
        return Ok(log_probs.chunks(classifier.classes()).map(|row| argmax(row) as u32).collect());
    }
    let model = crate::output::read_model_dir(dir)?;
    let plan = feature_plan(&model)?;
    let data_path = crate::resolve_data_path(&model.recipe.recipe, data)?;
    let prepared = crate::data::prepare(&model.recipe.recipe, &data_path, None)?;
    let examples = prepared.split(split)?;
    let device = crate::batch::default_device();
    let params = crate::output::params_from_model(&model, &plan, &device)?;
    let rows: Vec<usize> = (0..examples.count).collect();
    let mut classes = Vec::with_capacity(examples.count);
    for chunk in rows.chunks(EVAL_BATCH) {
        let input = crate::batch::batch_input(&plan.input, examples, chunk, &device);
        let scores = crate::batch::scores_2d(crate::model::forward(&plan, &params, input, None, true));
        classes.extend(crate::eval::argmax_rows(&scores));
    }
    Ok(classes)
}

/// Log-probabilities of every class for each example of a shard of a split (one thread, so the
/// same on every run), with the model's config, the examples, the shard's first row in the split
/// and the graph's cost.
pub(crate) fn split_log_probabilities(
    dir: &Path,
    data: Option<&Path>,
    split: &str,
    shard: Option<(usize, usize)>,
) -> Result<crate::predict::SplitScores, EngineError> {
    let (model, examples, input, first_row) = onnx_examples(dir, data, split, shard)?;
    let classifier = crate::batch::with_threads(1, || OnnxClassifier::load_reading(&dir.join(ONNX_FILE), &input, EVAL_BATCH))??;
    let log_probs = crate::batch::with_threads(1, || classifier.log_probabilities_of(&examples))??;
    let flops = classifier.flops_per_input() * examples.count as f64;
    Ok(crate::predict::SplitScores { model, examples, first_row, classes: classifier.classes(), log_probs, flops })
}

/// What a graph beside a config whose recipe reads `input` takes.
pub fn graph_input(input: &InputKind) -> GraphInput {
    match input {
        InputKind::Features(shape) => GraphInput::Features(shape.clone()),
        InputKind::Tokens { sequence_length, .. } => GraphInput::Tokens(*sequence_length),
    }
}

/// An ONNX directory's config, the split's examples (of one shard; text read with the config's
/// vocabulary), what the graph reads, and the shard's first row in the split.
fn onnx_examples(
    dir: &Path,
    data: Option<&Path>,
    split: &str,
    shard: Option<(usize, usize)>,
) -> Result<(LoadedModel, crate::data::Examples, GraphInput, usize), EngineError> {
    let model = crate::output::read_model_config(dir)?;
    let recipe = &model.recipe.recipe;
    let data_path = crate::resolve_data_path(recipe, data)?;
    let prepared = crate::data::prepare(recipe, &data_path, model.config.vocabulary.clone())?;
    let input = graph_input(&prepared.input);
    if matches!(input, GraphInput::Tokens(_)) && model.config.vocabulary.is_none() {
        return Err(EngineError::ModelDir {
            dir: dir.to_path_buf(),
            reason: "the recipe reads text and config.json has no vocabulary: the graph's token ids mean nothing without it".into(),
        });
    }
    let whole = prepared.split(split)?;
    let (examples, first_row) = match shard {
        Some((index, count)) => (whole.shard(index, count)?, whole.shard_start(index, count)),
        None => (whole.clone(), 0),
    };
    Ok((model, examples, input, first_row))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData};

    use super::*;
    use crate::model::{Activations, Params};

    /// The convolutional recipe, with its initial weights: the graph must compute what `forward`
    /// computes (layouts of convolution kernels, pooling windows, flattening order).
    #[test]
    fn an_exported_cnn_computes_what_the_native_network_computes() {
        let recipe = commons_recipe::recipe::load_with("mnist-cnn", &[]).expect("recipe");
        let plan = Plan::resolve(&recipe, InputKind::Features(vec![1, 28, 28]), DataDims { num_classes: 10, vocab_size: 0 }).expect("plan");
        let device = crate::batch::default_device();
        let params = Params::init(&plan, 7, &device);
        let bytes = export(&plan, &params.named_tensors(&plan), "mnist-cnn").expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(ONNX_FILE);
        std::fs::write(&path, bytes).expect("write");

        let rows = 5;
        let pixels: Vec<f32> = (0..rows * 784).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
        let classifier = OnnxClassifier::load(&path, &[1, 28, 28], 4).expect("tract reads the export");
        assert_eq!(classifier.classes(), 10);
        assert!(classifier.flops_per_input() > 1e6, "two convolutions: {}", classifier.flops_per_input());
        let onnx = classifier.log_probabilities(&pixels, rows).expect("run");

        let input = Activations::Rank4(Tensor::from_data(TensorData::new(pixels, [rows, 1, 28, 28]), &device));
        let scores = crate::batch::scores_2d(crate::model::forward(&plan, &params, input, None, true));
        let native = burn::tensor::activation::log_softmax(scores, 1).into_data().convert::<f32>().try_into_vec::<f32>().expect("scores");
        assert_eq!(onnx.len(), native.len());
        for (a, b) in onnx.iter().zip(&native) {
            assert!((a - b).abs() < 1e-4, "{onnx:?}\nvs\n{native:?}");
        }
    }

    #[test]
    fn networks_that_read_tokens_are_refused_with_a_reason() {
        let recipe = commons_recipe::recipe::load_with("lstm-sentiment", &[]).expect("recipe");
        let plan =
            Plan::resolve(&recipe, InputKind::Tokens { sequence_length: 8, vocab_size: 50 }, DataDims { num_classes: 2, vocab_size: 50 })
                .expect("plan");
        let err = export(&plan, &[], "lstm").expect_err("tokens");
        assert!(err.to_string().contains("features"), "{err}");
    }
}
