//! Inference (the HF Inference API's `hf-inference` shape): `POST /hf-inference/models/{ns}/{name}`
//! runs a model repository trained by Commons (`model.safetensors`), or an ONNX classifier of
//! images or text (`model.onnx`, trained elsewhere or exported), on what the caller sends, so
//! `huggingface_hub.InferenceClient(model="{hub}/hf-inference/models/{ns}/{name}")` classifies
//! images and text against it.
//!
//! - Image models take the image's bytes as the body (what the client sends without
//!   parameters), or `{"inputs": "<base64>", "parameters": {...}}`; they answer
//!   `[{"label", "score"}]`, most likely first.
//! - Text models take `{"inputs": "text" | ["text", ...], "parameters": {...}}` and answer one
//!   list per text, `[[{"label", "score"}]]`, as the Hub's text classification does.
//! - `parameters.top_k` keeps the most likely classes; `function_to_apply` may only be
//!   `softmax` (what the models emit).
//! - Character language models take what `InferenceClient.text_generation` sends, `{"inputs":
//!   "prompt", "parameters": {"max_new_tokens", "temperature", "seed", "return_full_text",
//!   "do_sample"}, "stream": false}`, and answer `[{"generated_text"}]` (the prompt and its
//!   continuation unless `return_full_text` is false, as the Hub's text generation does).
//!   Parameters these models cannot honour are refused by name, in the words the client reads
//!   to retry without them.
//!
//! Who may call: whoever may read the repository's files (a private or gated model is refused
//! as its downloads are). Before any engine work: the body within its limit, the model's files
//! within theirs, the request's cost within the floating-point budget; then the request waits
//! for one of `concurrency` turns (503 with `Retry-After` past `queue_wait`). A body is read
//! only once its request holds one of `requests_in_memory` slots, and a model's files only
//! once its load holds a turn, so a crowd of callers costs bounded memory, not a body each.

use std::sync::Arc;

use super::{Path, Query};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use base64::Engine as _;
use commons_db::RepoKind;
use serde::Deserialize;

use super::{readable_repo, require_content, resolve};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use crate::inference::{ClassScore, Classifier, Inference, InferenceError, LoadedModel, Modality, ModelInput, TextGenerator, WeightsFile};

/// The largest image body (raw; base64 in JSON takes 4/3 of it).
pub(crate) const IMAGE_BODY: u64 = 20 << 20;
/// Texts in one request.
const TEXTS_PER_REQUEST: usize = 64;
/// A model's `config.json` (its recipe and vocabulary).
const CONFIG_LIMIT: u64 = 16 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/hf-inference/models/{ns}/{name}", post(classify))
}

#[derive(Deserialize)]
pub(crate) struct RepoPath {
    ns: String,
    name: String,
}

#[derive(Deserialize)]
pub(crate) struct RevisionQuery {
    revision: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    inputs: serde_json::Value,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize, Default)]
struct Parameters {
    top_k: Option<usize>,
    function_to_apply: Option<String>,
}

fn bad_input(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadInput", message)
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        match e {
            InferenceError::Input(m) => bad_input(m),
            InferenceError::Model(m) => ApiError::new(StatusCode::BAD_REQUEST, "ModelNotRunnable", m),
        }
    }
}

async fn classify(
    State(state): State<AppState>,
    caller: Caller,
    Path(RepoPath { ns, name }): Path<RepoPath>,
    Query(query): Query<RevisionQuery>,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<Response> {
    let inference = engine(&state)?;
    let repo = readable_repo(&state, &caller, RepoKind::Model, &ns, &name).await?;
    require_content(&state, &caller, &repo).await?;
    let commit = resolve(&state, &repo, query.revision.as_deref().unwrap_or("main")).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    // The body comes into memory only under a slot (held until the answer).
    let _slot = wait_for(&inference.bodies, &inference).await?;
    let body = if is_json {
        body.bytes(IMAGE_BODY * 4 / 3 + (64 << 10), "an inference request").await?
    } else {
        body.bytes(IMAGE_BODY, "an image").await?
    };
    let model = match load(&state, &inference, &repo, &commit).await? {
        LoadedModel::Classifier(model) => model,
        LoadedModel::Generator(model) if is_json => return generate(&inference, model, &body).await,
        LoadedModel::Generator(_) => return Err(bad_input("a language model reads JSON: {\"inputs\": \"your prompt\"}")),
    };
    let (inputs, parameters): (Inputs, Parameters) = if is_json {
        let request: Request = crate::body::parse_json(&body, "an inference request")?;
        (Inputs::from_json(model.modality(), request.inputs)?, request.parameters)
    } else {
        match model.modality() {
            Modality::Image => (Inputs::Images(vec![body.to_vec()]), Parameters::default()),
            Modality::Text => return Err(bad_input("a text model reads JSON: {\"inputs\": \"your text\"}")),
        }
    };
    if let Some(f) = parameters.function_to_apply.as_deref().filter(|f| !f.eq_ignore_ascii_case("softmax")) {
        return Err(bad_input(format!("function_to_apply {f:?}: these models give probabilities (softmax) only")));
    }
    if parameters.top_k == Some(0) {
        return Err(bad_input("top_k must be at least 1"));
    }
    let single_image = matches!(inputs, Inputs::Images(_));
    let answers = run(&inference, model, inputs, parameters.top_k).await?;
    if single_image {
        return Ok(Json(answers.into_iter().next().unwrap_or_default()).into_response());
    }
    Ok(Json(answers).into_response())
}

/// The continuation a text generation request at most asks for, and what it gets when it does
/// not say.
const MAX_NEW_CHARACTERS: u64 = 10_000;
const DEFAULT_NEW_CHARACTERS: u64 = 64;
/// The longest prompt, in bytes: the model reads only its last window, and a prompt is copied
/// into the answer.
const MAX_PROMPT_BYTES: usize = 64 << 10;

/// A text generation request (`InferenceClient.text_generation`): the prompt, the sampling,
/// within the hub's budget and under a turn.
async fn generate(inference: &Inference, model: Arc<dyn TextGenerator>, body: &[u8]) -> ApiResult<Response> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Generation {
        inputs: serde_json::Value,
        #[serde(default)]
        parameters: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        stream: Option<bool>,
    }
    let request: Generation = crate::body::parse_json(body, "a text generation request")?;
    let serde_json::Value::String(prompt) = request.inputs else {
        return Err(bad_input("a language model reads one prompt: {\"inputs\": \"your prompt\"}"));
    };
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(bad_input(format!("a prompt of {} bytes; at most {MAX_PROMPT_BYTES}", prompt.len())));
    }
    if request.stream == Some(true) {
        return Err(bad_input("this hub answers a generation whole; send \"stream\": false"));
    }
    let (mut length, mut temperature, mut seed, mut full_text) = (DEFAULT_NEW_CHARACTERS, 1.0, 0, true);
    let mut unused = Vec::new();
    for (key, value) in &request.parameters {
        let wrong = |what: &str| bad_input(format!("parameters.{key} must be {what}"));
        match key.as_str() {
            _ if value.is_null() => {}
            "max_new_tokens" => {
                length = value
                    .as_u64()
                    .filter(|n| (1..=MAX_NEW_CHARACTERS).contains(n))
                    .ok_or_else(|| wrong(&format!("a whole number of characters from 1 to {MAX_NEW_CHARACTERS}")))?
            }
            "temperature" => temperature = value.as_f64().filter(|t| *t > 0.0 && t.is_finite()).ok_or_else(|| wrong("above 0"))?,
            "seed" => seed = value.as_u64().ok_or_else(|| wrong("a whole number"))?,
            "return_full_text" => full_text = value.as_bool().ok_or_else(|| wrong("true or false"))?,
            // These models always sample, and have no details to give.
            "do_sample" | "details" | "decoder_input_details" if value.as_bool() == Some(key == "do_sample") => {}
            _ => unused.push(format!("'{key}'")),
        }
    }
    if !unused.is_empty() {
        return Err(bad_input(format!(
            "The following `model_kwargs` are not used by the model: [{}] (a character language model samples with max_new_tokens, temperature and seed only)",
            unused.join(", ")
        )));
    }
    let continuation = run_generation(inference, model, &prompt, length as usize, temperature, seed).await?;
    let generated_text = if full_text { prompt + &continuation } else { continuation };
    Ok(Json(serde_json::json!([{ "generated_text": generated_text }])).into_response())
}

/// `prompt` continued by `length` characters within the hub's budget and under a turn: the
/// continuation.
pub(crate) async fn run_generation(
    inference: &Inference,
    model: Arc<dyn TextGenerator>,
    prompt: &str,
    length: usize,
    temperature: f64,
    seed: u64,
) -> ApiResult<String> {
    within_budget(inference, model.flops_per_character() * length as f64, &format!("{length} characters"))?;
    let _turn = wait_for(&inference.turns, inference).await?;
    let prompt = prompt.to_string();
    Ok(tokio::task::spawn_blocking(move || model.generate(&prompt, length, temperature, seed)).await.map_err(ApiError::internal)??)
}

/// A 413 when `what` would cost more than the hub runs for one request.
fn within_budget(inference: &Inference, flops: f64, what: &str) -> ApiResult<()> {
    if flops > inference.limits.max_flops {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BudgetExceeded",
            format!(
                "{what} would take {flops:.3e} floating-point operations; this hub runs at most {:.3e} per request",
                inference.limits.max_flops
            ),
        ));
    }
    Ok(())
}

/// The hub's inference, or a 404 when it was started without an engine.
pub(crate) fn engine(state: &AppState) -> ApiResult<Arc<Inference>> {
    state.inference.clone().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", "this hub runs no models (it was started without an inference engine)")
    })
}

/// Runs `model` on each of `inputs` within the hub's budget and under a turn: each input's
/// classes, most likely first, `top_k` of them when given.
pub(crate) async fn run(
    inference: &Inference,
    model: Arc<dyn Classifier>,
    inputs: Inputs,
    top_k: Option<usize>,
) -> ApiResult<Vec<Vec<ClassScore>>> {
    within_budget(inference, model.flops_per_input() * inputs.len() as f64, "this request")?;
    let _turn = wait_for(&inference.turns, inference).await?;
    let answers = tokio::task::spawn_blocking(move || -> Result<Vec<_>, InferenceError> {
        let classify = |input| {
            let mut classes = model.classify(input)?;
            if let Some(k) = top_k {
                classes.truncate(k);
            }
            Ok(classes)
        };
        match &inputs {
            Inputs::Images(images) => images.iter().map(|i| classify(ModelInput::Image(i))).collect(),
            Inputs::Texts(texts) => texts.iter().map(|t| classify(ModelInput::Text(t))).collect(),
        }
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(answers)
}

/// What a request asks the model to read.
pub(crate) enum Inputs {
    Images(Vec<Vec<u8>>),
    Texts(Vec<String>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Images(i) => i.len(),
            Inputs::Texts(t) => t.len(),
        }
    }

    fn from_json(modality: Modality, inputs: serde_json::Value) -> ApiResult<Inputs> {
        match (modality, inputs) {
            (Modality::Image, serde_json::Value::String(encoded)) => {
                if encoded.starts_with("http://") || encoded.starts_with("https://") {
                    return Err(bad_input("send the image's bytes (raw, or base64 in \"inputs\"): this hub fetches no URLs"));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| bad_input(format!("\"inputs\" is not base64 of an image: {e}")))?;
                Ok(Inputs::Images(vec![bytes]))
            }
            (Modality::Text, serde_json::Value::String(text)) => Ok(Inputs::Texts(vec![text])),
            (Modality::Text, serde_json::Value::Array(items)) => {
                if items.is_empty() || items.len() > TEXTS_PER_REQUEST {
                    return Err(bad_input(format!("\"inputs\" holds {} texts; send 1 to {TEXTS_PER_REQUEST}", items.len())));
                }
                let texts = items
                    .into_iter()
                    .map(|t| match t {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(bad_input("\"inputs\" must be a text or a list of texts")),
                    })
                    .collect::<ApiResult<_>>()?;
                Ok(Inputs::Texts(texts))
            }
            (Modality::Image, _) => Err(bad_input("an image model reads an image: the bytes as the body, or base64 in \"inputs\"")),
            (Modality::Text, _) => Err(bad_input("\"inputs\" must be a text or a list of texts")),
        }
    }
}

/// Waits for one of `slots` (model turns or body slots); 503 with `Retry-After` when none
/// comes in time.
pub(crate) async fn wait_for<'a>(slots: &'a tokio::sync::Semaphore, inference: &Inference) -> ApiResult<tokio::sync::SemaphorePermit<'a>> {
    match tokio::time::timeout(inference.limits.queue_wait, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "this hub is running all the models it can at once; try again shortly",
        )
        .with_retry_after(5)),
    }
}

/// The model of `repo` at `commit`, loaded once and kept (a commit's files never change).
pub(crate) async fn load(state: &AppState, inference: &Arc<Inference>, repo: &commons_db::Repo, commit: &str) -> ApiResult<LoadedModel> {
    let key = (repo.id, commit.to_string());
    if let Some(model) = inference.loaded.get(&key) {
        return Ok(model);
    }
    let not_runnable = |why: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "ModelNotRunnable", format!("{}/{} cannot be run here: {why}", repo.namespace, repo.name))
    };
    let Some(config) = state.repos.file(repo, commit, "config.json").await? else {
        return Err(not_runnable("it holds no config.json as `commons train` and `commons export-onnx` write it".into()));
    };
    let mut found = None;
    for kind in WeightsFile::ALL {
        if let Some(file) = state.repos.file(repo, commit, kind.name()).await? {
            found = Some((kind, file));
            break;
        }
    }
    let Some((kind, weights)) = found else {
        return Err(not_runnable("it holds neither model.safetensors nor model.onnx beside its config.json".into()));
    };
    if config.size as u64 > CONFIG_LIMIT || weights.size as u64 > inference.limits.max_weights {
        return Err(not_runnable(format!(
            "its files are larger than this hub loads ({} bytes of config.json at most, {} of weights)",
            CONFIG_LIMIT, inference.limits.max_weights
        )));
    }
    // Loading is engine work too, and the files come into memory only under its turn.
    let _turn = wait_for(&inference.turns, inference).await?;
    if let Some(model) = inference.loaded.get(&key) {
        // Another request loaded it while this one waited.
        return Ok(model);
    }
    let config = state.cas.read_to_vec(&config.sha256, CONFIG_LIMIT).await?;
    let weights = state.cas.read_to_vec(&weights.sha256, inference.limits.max_weights).await?;
    let engine = inference.engine.clone();
    let model = tokio::task::spawn_blocking(move || engine.load(&config, kind, &weights)).await.map_err(ApiError::internal)??;
    inference.loaded.insert(key, model.clone());
    Ok(model)
}
