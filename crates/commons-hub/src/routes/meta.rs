//! Account and card endpoints: whoami (protocol §8) and validate-yaml (§13).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use commons_db::Scope;

pub async fn whoami(State(_state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let token = caller.require()?;
    let orgs: Vec<Value> = token
        .orgs
        .iter()
        .map(|m| {
            json!({
                "type": "org", "id": format!("{:024x}", m.org_id), "name": m.org, "fullname": m.fullname,
                "email": null, "canPay": false, "avatarUrl": "", "periodEnd": null, "roleInOrg": m.role.as_str(),
            })
        })
        .collect();
    Ok(Json(json!({
        "type": "user",
        "id": format!("{:024x}", token.user.id),
        "name": token.user.name,
        "fullname": token.user.fullname,
        "email": null,
        "emailVerified": false,
        "canPay": false,
        "isPro": false,
        "periodEnd": null,
        "avatarUrl": "",
        "orgs": orgs,
        // The Hub's roles are read and write; a worker token reads like a read token.
        "auth": {"type": "access_token", "accessToken": {"displayName": token.name, "role": match token.scope {
            Scope::Write => "write",
            Scope::Read | Scope::Worker => "read",
        }}},
    })))
}

#[derive(Deserialize)]
pub struct ValidateYaml {
    content: String,
}

/// Checks a README's YAML front matter. Answers 200 with the problems listed, as the clients
/// expect, never a non-JSON error.
pub async fn validate_yaml(State(state): State<AppState>, body: RawBody) -> ApiResult<Json<Value>> {
    let body: ValidateYaml = body.json(state.limits.json_body, "the validate-yaml request").await?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    // The same reading as a commit's (errors name the README's line).
    match commons_card::Card::parse(&body.content) {
        Ok(card) if card.metadata.is_empty() => warnings.push(json!({"message": "Empty metadata"})),
        Ok(card) => {
            // What the Hub's schema refuses and clients rely on: results are a list.
            if card.metadata.get("model-index").is_some_and(|v| !v.is_array()) {
                errors.push(json!({"message": "\"model-index\" must be an array"}));
            }
        }
        Err(e) => errors.push(json!({"message": format!("README.md: {e}")})),
    }
    if !errors.is_empty() {
        // The Hub's answer: a 400 listing the errors, which clients show line by line.
        let text = errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ");
        return Err(ApiError::bad_request(format!("Invalid metadata in README.md: {text}"))
            .with_extra("errors", json!(errors))
            .with_extra("warnings", json!(warnings)));
    }
    Ok(Json(json!({"errors": errors, "warnings": warnings})))
}
