//! A model's "Try it" page (`/{ns}/{name}/try`): a form for an image or a text, by what the
//! model reads, and its classes with their probabilities; for a character language model, a
//! beginning and what the model writes after it. It runs through the inference
//! route's own steps (`routes::inference`), with the same access checks and bounds: the
//! form's body is read only under one of the hub's body slots and up to an image's limit.

use axum::extract::{FromRequest, Multipart, Path, State};
use axum::http::{StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::session::Visitor;
use super::{PageError, PageResult, page, repo_value};
use crate::AppState;
use crate::inference::{ClassScore, LoadedModel, Modality};
use crate::routes::{IMAGE_BODY, Inputs, inference_engine, load_model, run_generation, run_model, wait_for};
use commons_db::RepoKind;

/// Classes shown.
const SHOWN: usize = 5;
/// The longest text the form takes, in bytes.
const TEXT_LIMIT: usize = 10_000;

#[derive(Deserialize)]
pub(crate) struct ModelPath {
    ns: String,
    name: String,
}

/// Characters a generation adds, and how they are drawn: `commons generate`'s defaults, so the
/// page and the command line write the same text.
const GENERATED: usize = 200;
const TEMPERATURE: f64 = 0.8;
const SEED: u64 = 1;

/// What the form asks for: `image`, `text` (to classify) or `generate`.
fn form_kind(model: &LoadedModel) -> &'static str {
    match model {
        LoadedModel::Classifier(model) => match model.modality() {
            Modality::Image => "image",
            Modality::Text => "text",
        },
        LoadedModel::Generator(_) => "generate",
    }
}

/// `GET …/try`: the form, for what the model reads.
pub(crate) async fn form(State(state): State<AppState>, mut visitor: Visitor, Path(p): Path<ModelPath>) -> PageResult {
    let inference = inference_engine(&state)?;
    let repo = state.repos.find(RepoKind::Model, &p.ns, &p.name, visitor.reader()).await?;
    crate::routes::require_content(&state, &visitor.caller, &repo).await?;
    let commit = state.repos.pin(&repo, "main").await?;
    let model = load_model(&state, &inference, &repo, &commit).await?;
    let cookie = visitor.ensure_seed();
    let mut response =
        page(&visitor, "try.html", context! { repo => repo_value(&repo, None), tab => "try", modality => form_kind(&model), commit });
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST …/try`, `multipart/form-data` with `csrf` first, then `image` (a file) or `text`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<ModelPath>,
    mut request: axum::extract::Request,
) -> PageResult {
    let inference = inference_engine(&state)?;
    let repo = state.repos.find(RepoKind::Model, &p.ns, &p.name, visitor.reader()).await?;
    crate::routes::require_content(&state, &visitor.caller, &repo).await?;
    let commit = state.repos.pin(&repo, "main").await?;
    // As for the API: the body comes into memory only under a slot, and up to an image.
    let _slot = wait_for(&inference.bodies, &inference).await?;
    axum::extract::DefaultBodyLimit::disable().apply(&mut request);
    let bad_form = |e: axum::extract::multipart::MultipartRejection| PageError { status: e.status(), message: e.body_text() };
    let mut form = Multipart::from_request(request, &()).await.map_err(bad_form)?;
    let bad = |e: axum::extract::multipart::MultipartError| PageError {
        status: e.status(),
        message: format!("The form could not be read: {}", e.body_text()),
    };
    let (mut csrf, mut image, mut text) = (false, None::<Vec<u8>>, None::<String>);
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if !csrf && name != "csrf" {
            // Nothing of a form that does not open with its token is read.
            return Err(PageError { status: StatusCode::FORBIDDEN, message: "This form did not come from this site.".into() });
        }
        let limit = if name == "image" { IMAGE_BODY as usize } else { TEXT_LIMIT };
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            if data.len() + chunk.len() > limit {
                return Err(PageError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("The {name} is larger than this form takes ({}).", super::human_size(limit as i64)),
                });
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "csrf" => {
                visitor.check_csrf(&String::from_utf8_lossy(&data))?;
                csrf = true;
            }
            "image" => image = Some(data),
            "text" => text = Some(String::from_utf8(data).map_err(|_| PageError::bad_request("The text is not UTF-8."))?),
            _ => {}
        }
    }
    if !csrf {
        return Err(PageError { status: StatusCode::FORBIDDEN, message: "This form did not come from this site.".into() });
    }
    let model = load_model(&state, &inference, &repo, &commit).await?;
    let kind = form_kind(&model);
    let model = match model {
        LoadedModel::Classifier(model) => model,
        LoadedModel::Generator(model) => {
            let prompt = text.unwrap_or_default();
            let (generated, error) = match run_generation(&inference, model, &prompt, GENERATED, TEMPERATURE, SEED).await {
                Ok(continuation) => (Some(continuation), None),
                Err(e) if e.status == StatusCode::BAD_REQUEST => (None, Some(e.message)),
                Err(e) => return Err(e.into()),
            };
            let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            let mut response = page(
                &visitor,
                "try.html",
                context! { repo => repo_value(&repo, None), tab => "try", modality => kind, commit, text => prompt, error, generated },
            );
            *response.status_mut() = status;
            return Ok(response);
        }
    };
    let modality = model.modality();
    let inputs = match modality {
        Modality::Image => Inputs::Images(vec![
            image.filter(|i| !i.is_empty()).ok_or_else(|| PageError::bad_request("Choose an image file to classify."))?,
        ]),
        Modality::Text => Inputs::Texts(vec![text.clone().ok_or_else(|| PageError::bad_request("Write a text to classify."))?]),
    };
    // The model's refusals of an input (not an image, an empty text) are shown on the form.
    let (results, error) = match run_model(&inference, model, inputs, Some(SHOWN)).await {
        Ok(mut answers) => (answers.pop().unwrap_or_default(), None),
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), Some(e.message)),
        Err(e) => return Err(e.into()),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut response = page(
        &visitor,
        "try.html",
        context! {
            repo => repo_value(&repo, None), tab => "try", modality => kind, commit,
            text, error, results => results.iter().map(result_value).collect::<Vec<_>>(),
        },
    );
    *response.status_mut() = status;
    Ok(response)
}

fn result_value(class: &ClassScore) -> minijinja::Value {
    context! { label => class.label, score => format!("{:.4}", class.score), percent => format!("{:.1}", class.score * 100.0) }
}
