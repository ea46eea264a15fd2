//! Running a trained classifier on one input a person brings: an image file for a model trained
//! on images, a sentence for a model trained on labelled text. The input is turned into exactly
//! what the model saw in training (the recipe's scale and shape, the model's own vocabulary),
//! and the answer is every class with its probability, most likely first.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use commons_recipe::model_dir::{PAD, UNK, Vocabulary};
use commons_recipe::recipe::{DataFormat, RecipeKind};

use crate::batch::{default_device, scores_2d};
use crate::error::EngineError;
use crate::model::{self, Activations, DataDims, InputKind, Params, Plan};
use crate::onnx::{self, OnnxClassifier};
use crate::output::{self, LoadedModel};

/// Largest image file decoded (a camera photo is a few MB; the network reads a few KB of it).
pub const MAX_IMAGE_BYTES: usize = 20 << 20;
/// Widest and tallest image decoded.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Memory a decode may take, whatever the file's header claims.
const MAX_IMAGE_ALLOC: u64 = 256 << 20;
/// Longest text read (the network reads its first `sequence_length` words).
pub const MAX_TEXT_BYTES: usize = 100_000;

/// What a caller brings.
#[derive(Debug, Clone, Copy)]
pub enum PredictInput<'a> {
    /// An encoded image file (PNG, JPEG).
    Image(&'a [u8]),
    /// A sentence or document.
    Text(&'a str),
}

/// What a model reads, for callers that must choose how to read a user's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputModality {
    Image,
    Text,
}

/// One class and the model's probability for it (the wire format's own type).
pub use commons_protocol::ClassScore;

/// Image layout: channels (1 grey, 3 RGB), rows, columns.
#[derive(Debug, Clone, Copy)]
struct ImageShape {
    channels: usize,
    rows: usize,
    cols: usize,
}

enum Reader {
    /// `dims`: the network's input with its batch axis of one.
    Image {
        shape: ImageShape,
        scale: f32,
        dims: Vec<usize>,
    },
    Text {
        sequence_length: usize,
        index: BTreeMap<String, u32>,
    },
}

/// What computes the scores: our network, or an ONNX graph (images only).
enum Network {
    Native { plan: Plan, params: Params },
    Onnx(OnnxClassifier),
}

/// A classifier loaded once and asked many times (the CLI asks once; a server keeps it).
pub struct Predictor {
    network: Network,
    reader: Reader,
    labels: Vec<String>,
}

fn refuse(reason: impl Into<String>) -> EngineError {
    EngineError::Input(reason.into())
}

impl Predictor {
    /// The model in directory `dir`: as `commons train` writes it, or an ONNX model directory
    /// (`model.onnx` beside its `config.json`).
    pub fn load(dir: &Path) -> Result<Predictor, EngineError> {
        if onnx::is_onnx_dir(dir) {
            return Self::from_onnx(output::read_model_config(dir)?, &dir.join(onnx::ONNX_FILE));
        }
        Self::from_model(output::read_model_dir(dir)?)
    }

    /// An ONNX classifier (of images, or of text in its config's vocabulary), read with its
    /// config's recipe.
    pub fn from_onnx(model: LoadedModel, graph: &Path) -> Result<Predictor, EngineError> {
        let size = std::fs::metadata(graph).map_err(|e| EngineError::io(format!("reading {}", graph.display()), e))?.len();
        if size > onnx::MAX_ONNX_BYTES {
            return Err(EngineError::Onnx(format!("{} is {size} bytes; at most {} are read", graph.display(), onnx::MAX_ONNX_BYTES)));
        }
        let bytes = std::fs::read(graph).map_err(|e| EngineError::io(format!("reading {}", graph.display()), e))?;
        Self::from_onnx_bytes(model, &bytes)
    }

    /// [`Predictor::from_onnx`] from the graph's bytes (a model repository's `model.onnx`).
    pub fn from_onnx_bytes(model: LoadedModel, graph: &[u8]) -> Result<Predictor, EngineError> {
        let (reader, input, _, labels) = Self::reader(&model)?;
        let classifier = OnnxClassifier::from_bytes_reading(graph, &onnx::graph_input(&input), 1)?;
        if classifier.classes() != labels.len() {
            return Err(refuse(format!("the graph gives {} scores; the recipe names {} classes", classifier.classes(), labels.len())));
        }
        Ok(Predictor { network: Network::Onnx(classifier), reader, labels })
    }

    pub fn from_model(model: LoadedModel) -> Result<Predictor, EngineError> {
        let (reader, input, vocab_size, labels) = Self::reader(&model)?;
        let plan = Plan::resolve(&model.recipe, input, DataDims { num_classes: labels.len(), vocab_size })?;
        let params = output::params_from_model(&model, &plan, &default_device())?;
        Ok(Predictor { network: Network::Native { plan, params }, reader, labels })
    }

    /// How a person's input becomes the model's (from the recipe), what the network reads, the
    /// vocabulary's size and the class names.
    fn reader(model: &LoadedModel) -> Result<(Reader, InputKind, usize, Vec<String>), EngineError> {
        let recipe = &model.recipe.recipe;
        let not_classifier = || EngineError::ModelDir {
            dir: model.dir.clone(),
            reason: format!("`{}` is a {:?} model, not a classifier: there is nothing to predict a class with", recipe.name, recipe.kind),
        };
        if recipe.kind != RecipeKind::Classification {
            return Err(not_classifier());
        }
        let num_classes = recipe
            .data
            .num_classes
            .or_else(|| model.config.layer_shapes.last().and_then(|s| s.last().copied()))
            .ok_or_else(not_classifier)?;
        let model_dir_error = |reason: String| EngineError::ModelDir { dir: model.dir.clone(), reason };
        let (reader, input, vocab_size) = match recipe.data.format {
            DataFormat::Idx => {
                let shape = match recipe.data.input_shape.as_slice() {
                    [rows, cols] => ImageShape { channels: 1, rows: *rows, cols: *cols },
                    [channels @ (1 | 3), rows, cols] => ImageShape { channels: *channels, rows: *rows, cols: *cols },
                    other => {
                        return Err(model_dir_error(format!(
                            "input_shape {other:?} is not an image's [rows, cols] or [channels, rows, cols]"
                        )));
                    }
                };
                {
                    let dims = std::iter::once(1).chain(recipe.data.input_shape.iter().copied()).collect();
                    (Reader::Image { shape, scale: recipe.data.scale, dims }, InputKind::Features(recipe.data.input_shape.clone()), 0)
                }
            }
            DataFormat::JsonText => {
                let vocabulary: &Vocabulary =
                    model.config.vocabulary.as_ref().ok_or_else(|| model_dir_error("config.json has no vocabulary".into()))?;
                let sequence_length = *recipe
                    .data
                    .input_shape
                    .first()
                    .ok_or_else(|| model_dir_error("the recipe has no input_shape = [sequence_length]".into()))?;
                let index = vocabulary.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
                (
                    Reader::Text { sequence_length, index },
                    InputKind::Tokens { sequence_length, vocab_size: vocabulary.len() },
                    vocabulary.len(),
                )
            }
            DataFormat::Csv | DataFormat::Text => {
                return Err(model_dir_error(format!(
                    "`{}` reads {:?} data; predict reads images (IDX-trained models) and text (json-text-trained models)",
                    recipe.name, recipe.data.format
                )));
            }
        };
        let labels = match &recipe.data.labels {
            Some(names) if names.len() == num_classes => names.clone(),
            Some(names) => {
                return Err(model_dir_error(format!("the recipe names {} labels for {num_classes} classes", names.len())));
            }
            None => (0..num_classes).map(|c| c.to_string()).collect(),
        };
        Ok((reader, input, vocab_size, labels))
    }

    /// Whether the model reads images or text.
    pub fn modality(&self) -> InputModality {
        match self.reader {
            Reader::Image { .. } => InputModality::Image,
            Reader::Text { .. } => InputModality::Text,
        }
    }

    /// Floating-point operations one input costs (the forward pass).
    pub fn flops_per_input(&self) -> f64 {
        match &self.network {
            Network::Native { plan, .. } => commons_recipe::cost::evaluation_flops(plan, 1),
            Network::Onnx(classifier) => classifier.flops_per_input(),
        }
    }

    /// The model's class names, in class order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Every class with its probability, most likely first (ties in class order).
    pub fn predict(&self, input: PredictInput<'_>) -> Result<Vec<ClassScore>, EngineError> {
        let probabilities: Vec<f32> = match (&self.network, &self.reader, input) {
            (_, Reader::Image { .. }, PredictInput::Text(_)) => return Err(refuse("this model classifies images: give it an image file")),
            (_, Reader::Text { .. }, PredictInput::Image(_)) => return Err(refuse("this model classifies text: give it a sentence")),
            (Network::Onnx(classifier), Reader::Image { shape, scale, .. }, PredictInput::Image(bytes)) => {
                let pixels = image_pixels(bytes, *shape, *scale)?;
                classifier.log_probabilities(&pixels, 1)?.into_iter().map(f32::exp).collect()
            }
            (Network::Onnx(classifier), Reader::Text { sequence_length, index }, PredictInput::Text(text)) => {
                let ids: Vec<u32> = token_ids(text, *sequence_length, index)?.into_iter().map(|id| id as u32).collect();
                classifier.log_probabilities_of_tokens(&ids, 1)?.into_iter().map(f32::exp).collect()
            }
            (Network::Native { plan, params }, reader, input) => {
                let device = default_device();
                let batch = match (reader, input) {
                    (Reader::Image { shape, scale, dims }, PredictInput::Image(bytes)) => {
                        let data = TensorData::new(image_pixels(bytes, *shape, *scale)?, dims.clone());
                        match dims.len() {
                            3 => Activations::Rank3(Tensor::from_data(data, &device)),
                            _ => Activations::Rank4(Tensor::from_data(data, &device)),
                        }
                    }
                    (Reader::Text { sequence_length, index }, PredictInput::Text(text)) => {
                        let ids = token_ids(text, *sequence_length, index)?;
                        Activations::Tokens(Tensor::from_data(TensorData::new(ids, [1, *sequence_length]), &device))
                    }
                    _ => return Err(refuse("this model reads another kind of input")),
                };
                let scores = scores_2d(model::forward(plan, params, batch, None, true));
                softmax(scores, 1).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
            }
        };
        if probabilities.len() != self.labels.len() {
            return Err(refuse(format!("the network gave {} scores for {} classes", probabilities.len(), self.labels.len())));
        }
        let mut ranked: Vec<ClassScore> =
            self.labels.iter().zip(probabilities).map(|(label, score)| ClassScore { label: label.clone(), score }).collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(ranked)
    }
}

/// An encoded image as the model's input: decoded within bounds, converted to the model's
/// channels, resized to its rows × columns when it differs, divided by the recipe's scale.
fn image_pixels(bytes: &[u8], shape: ImageShape, scale: f32) -> Result<Vec<f32>, EngineError> {
    if bytes.is_empty() {
        return Err(refuse("the image is empty"));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(refuse(format!("the image is {} bytes; at most {MAX_IMAGE_BYTES} are read", bytes.len())));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| refuse(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(refuse("not an image this server reads (PNG or JPEG)"));
    }
    // The file's header names its size: refuse a small file that would decode into gigabytes.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| refuse(format!("not an image this server reads: {e}")))?;
    let (rows, cols) = (shape.rows as u32, shape.cols as u32);
    let resized = if decoded.width() == cols && decoded.height() == rows {
        decoded
    } else {
        decoded.resize_exact(cols, rows, image::imageops::FilterType::Triangle)
    };
    let plane = shape.rows * shape.cols;
    let values: Vec<f32> = if shape.channels == 1 {
        resized.to_luma8().into_raw().into_iter().map(|p| f32::from(p) / scale).collect()
    } else {
        // Channels first, as the network's convolutions read them.
        let rgb = resized.to_rgb8().into_raw();
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = f32::from(pixel[c]) / scale;
            }
        }
        out
    };
    Ok(values)
}

/// A text as the model's token ids: its words as in training, unknown ones as `<unk>`, padded
/// in front to the sequence length (as training padded).
fn token_ids(text: &str, sequence_length: usize, index: &BTreeMap<String, u32>) -> Result<Vec<i64>, EngineError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(refuse(format!("the text is {} bytes; at most {MAX_TEXT_BYTES} are read", text.len())));
    }
    let words = commons_data::corpus::tokenize(text);
    if words.is_empty() {
        return Err(refuse("the text is empty: there is nothing to classify"));
    }
    let ids: Vec<u32> = words.iter().take(sequence_length).map(|w| index.get(w.as_str()).copied().unwrap_or(UNK)).collect();
    let mut out: Vec<i64> = std::iter::repeat_n(i64::from(PAD), sequence_length - ids.len()).collect();
    out.extend(ids.into_iter().map(i64::from));
    Ok(out)
}

/// Log-probabilities of a split's examples, as batch inference computes them (see
/// [`predict_split`]).
pub(crate) struct SplitScores {
    pub model: LoadedModel,
    pub examples: crate::data::Examples,
    pub first_row: usize,
    pub classes: usize,
    /// `examples.count × classes`.
    pub log_probs: Vec<f32>,
    pub flops: f64,
}

/// Batch inference: the most likely class of every example of a shard of a split (the first on
/// a tie), its probability and the example's own label, computed on one thread in evaluation's
/// fixed batches, so every machine of one numeric class gives the same bits. Returns the
/// predictions and the floating-point operations they took. Classifiers only.
pub fn predict_split(
    dir: &Path,
    data: Option<&Path>,
    split: &str,
    shard: Option<(usize, usize)>,
) -> Result<(commons_protocol::Predictions, f64), EngineError> {
    let scores = if onnx::is_onnx_dir(dir) {
        onnx::split_log_probabilities(dir, data, split, shard)?
    } else {
        native_split_scores(dir, data, split, shard)?
    };
    let recipe = &scores.model.recipe.recipe;
    refuse_non_classifier(dir, &scores.model)?;
    let labels = match &recipe.data.labels {
        Some(names) if names.len() == scores.classes => names.clone(),
        _ => (0..scores.classes).map(|c| c.to_string()).collect(),
    };
    let count = scores.examples.count;
    if scores.examples.targets.len() != count || scores.log_probs.len() != count * scores.classes {
        return Err(EngineError::Data(format!(
            "{count} examples, {} labels and {} scores for {} classes",
            scores.examples.targets.len(),
            scores.log_probs.len(),
            scores.classes
        )));
    }
    let mut classes = Vec::with_capacity(count);
    let mut probabilities = Vec::with_capacity(count);
    for (row, values) in scores.log_probs.chunks(scores.classes.max(1)).enumerate() {
        let best = crate::eval::argmax(values);
        let probability = values[best].exp();
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(EngineError::Data(format!(
                "example {} of the split: the model's probability is {probability} (its weights give no number)",
                scores.first_row + row
            )));
        }
        classes.push(best as u32);
        probabilities.push(probability);
    }
    let predictions = commons_protocol::Predictions {
        first_row: scores.first_row,
        labels,
        classes,
        scores: probabilities,
        targets: scores.examples.targets,
    };
    Ok((predictions, scores.flops))
}

fn refuse_non_classifier(dir: &Path, model: &LoadedModel) -> Result<(), EngineError> {
    let recipe = &model.recipe.recipe;
    if recipe.kind != RecipeKind::Classification {
        return Err(EngineError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("`{}` is a {:?} model, not a classifier: there is no class to predict", recipe.name, recipe.kind),
        });
    }
    Ok(())
}

/// [`SplitScores`] of a model `commons train` wrote.
fn native_split_scores(dir: &Path, data: Option<&Path>, split: &str, shard: Option<(usize, usize)>) -> Result<SplitScores, EngineError> {
    let model = output::read_model_dir(dir)?;
    refuse_non_classifier(dir, &model)?;
    let data_path = crate::resolve_data_path(&model.recipe.recipe, data)?;
    let prepared = crate::data::prepare(&model.recipe.recipe, &data_path, model.config.vocabulary.clone())?;
    let plan = Plan::resolve(&model.recipe, prepared.input.clone(), prepared.dims)?;
    let device = default_device();
    let params = output::params_from_model(&model, &plan, &device)?;
    let whole = prepared.split(split)?;
    let (examples, first_row) = match shard {
        Some((index, count)) => (whole.shard(index, count)?, whole.shard_start(index, count)),
        None => (whole.clone(), 0),
    };
    let classes = *plan.output_shape().last().unwrap_or(&0);
    let log_probs = crate::batch::with_threads(1, || -> Result<Vec<f32>, EngineError> {
        let rows: Vec<usize> = (0..examples.count).collect();
        let mut all = Vec::with_capacity(examples.count * classes);
        for chunk in rows.chunks(crate::eval::EVAL_BATCH) {
            let input = crate::batch::batch_input(&plan.input, &examples, chunk, &device);
            let scores = scores_2d(model::forward(&plan, &params, input, None, true));
            let values = burn::tensor::activation::log_softmax(scores, 1)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| EngineError::Data(format!("reading scores: {e:?}")))?;
            all.extend(values);
        }
        Ok(all)
    })??;
    let flops = commons_recipe::cost::evaluation_flops(&plan, examples.count as u64);
    Ok(SplitScores { model, examples, first_row, classes, log_probs, flops })
}
