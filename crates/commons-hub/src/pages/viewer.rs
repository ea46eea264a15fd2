//! The dataset viewer's page: a split's rows as a table, paged, images inline, class labels by
//! name, and each column's statistics as a small histogram. It reads through the same readers
//! as the viewer API (`/rows`, `/statistics`), with the same bounds.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use minijinja::{Value, context};
use serde::Deserialize;

use super::session::Visitor;
use super::{PageError, PageResult, page, page_number, repo_url, repo_value};
use crate::AppState;
use crate::routes::{ViewerPage, viewer_page};
use commons_db::RepoKind;

/// Rows on a page of the viewer, and on the dataset card's preview.
pub(crate) const VIEWER_PAGE: usize = 50;
pub(crate) const PREVIEW_ROWS: usize = 5;
/// Pages one may ask for: deep rows are the API's (`/rows?offset=`).
const MAX_VIEWER_PAGES: usize = 100_000;
/// Characters of a cell shown in the table.
const CELL_CHARS: usize = 300;

#[derive(Deserialize)]
pub(crate) struct ViewerPath {
    ns: String,
    name: String,
    config: Option<String>,
    split: Option<String>,
}

pub(crate) async fn viewer(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<ViewerPath>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let page_no = page_number(&q, MAX_VIEWER_PAGES)?;
    let offset = page_no * VIEWER_PAGE;
    let view = viewer_page(&state, &visitor, &p.ns, &p.name, p.config.as_deref(), p.split.as_deref(), offset, VIEWER_PAGE, true)
        .await
        .map_err(PageError::from)?;
    let base = repo_url(RepoKind::Dataset, &p.ns, &p.name);
    let here = format!("{base}/viewer/{}/{}", super::encode_rev(&view.config), super::encode_rev(&view.split));
    let more = offset + view.rows.len() < view.total;
    Ok(page(
        &visitor,
        "viewer.html",
        context! {
            repo => repo_value(&view.repo, None), tab => "viewer",
            table => table(&view),
            splits => view.splits.iter().map(|(c, s)| context! {
                name => if c == "default" { s.clone() } else { format!("{c} / {s}") },
                url => format!("{base}/viewer/{}/{}", super::encode_rev(c), super::encode_rev(s)),
                current => *c == view.config && *s == view.split,
            }).collect::<Vec<_>>(),
            statistics => statistics(view.statistics.as_deref().unwrap_or_default()),
            first => offset + 1, last => offset + view.rows.len(), total => view.total,
            previous => (page_no > 0).then(|| format!("{here}?p={}", page_no - 1)),
            next => more.then(|| format!("{here}?p={}", page_no + 1)),
            api => format!("/api/datasets-server/rows?dataset={}/{}&config={}&split={}&offset={offset}&length={VIEWER_PAGE}",
                p.ns, p.name, view.config, view.split),
        },
    ))
}

/// The first rows of a dataset for its card page, or `None` when the viewer cannot read it
/// (no data files, a format it does not know): the card page shows without a preview then.
pub(crate) async fn preview(state: &AppState, visitor: &Visitor, ns: &str, name: &str) -> Option<Value> {
    let view = viewer_page(state, visitor, ns, name, None, None, 0, PREVIEW_ROWS, false).await.ok()?;
    Some(context! {
        table => table(&view),
        total => view.total,
        url => format!("{}/viewer/{}/{}", repo_url(RepoKind::Dataset, ns, name), super::encode_rev(&view.config), super::encode_rev(&view.split)),
        split => view.split,
    })
}

/// Column names and types, and rows of cells, as the table template draws them.
fn table(view: &ViewerPage) -> Value {
    let columns: Vec<(String, String, Option<Vec<String>>)> = view
        .features
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap_or_default().to_string();
            let kind = &f["type"];
            let names = kind["names"].as_array().map(|n| n.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect());
            let shown = match kind["_type"].as_str() {
                Some("Value") => kind["dtype"].as_str().unwrap_or("value").to_string(),
                Some(other) => other.to_string(),
                None => "value".to_string(),
            };
            (name, shown, names)
        })
        .collect();
    let rows: Vec<Value> = view
        .rows
        .iter()
        .map(|r| {
            let index = r["row_idx"].as_u64().unwrap_or_default();
            let cells: Vec<Value> = columns.iter().map(|(name, _, names)| cell(&r["row"][name], names.as_deref(), name)).collect();
            context! { index, cells }
        })
        .collect();
    context! {
        columns => columns.iter().map(|(name, kind, _)| context! { name, kind }).collect::<Vec<_>>(),
        rows,
    }
}

fn cell(value: &serde_json::Value, names: Option<&[String]>, column: &str) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => context! { text => "null", null => true },
        J::String(s) => context! { text => clip(s) },
        J::Number(n) => match (names, n.as_u64()) {
            (Some(names), Some(i)) if (i as usize) < names.len() => context! { text => format!("{} ({i})", names[i as usize]) },
            _ => context! { text => n.to_string() },
        },
        J::Bool(b) => context! { text => b.to_string() },
        J::Object(o) if o.get("src").is_some_and(J::is_string) => context! {
            src => o["src"].as_str(),
            width => o.get("width").and_then(J::as_u64),
            height => o.get("height").and_then(J::as_u64),
            alt => format!("{column} image"),
        },
        other => context! { text => clip(&other.to_string()) },
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= CELL_CHARS { s.to_string() } else { format!("{}…", s.chars().take(CELL_CHARS).collect::<String>()) }
}

/// Each column's statistics as the page draws them: a histogram's bars (or a class's
/// frequencies) scaled into a 100 × 30 box, and the numbers that summarise it.
fn statistics(stats: &[serde_json::Value]) -> Vec<Value> {
    stats
        .iter()
        .map(|s| {
            let name = s["column_name"].as_str().unwrap_or_default();
            let st = &s["column_statistics"];
            let mut bars: Vec<(String, f64)> = Vec::new();
            if let (Some(hist), Some(edges)) = (st["histogram"]["hist"].as_array(), st["histogram"]["bin_edges"].as_array()) {
                for (i, count) in hist.iter().enumerate() {
                    let from = edges.get(i).map(ToString::to_string).unwrap_or_default();
                    let to = edges.get(i + 1).map(ToString::to_string).unwrap_or_default();
                    bars.push((format!("{from} to {to}: {count}"), count.as_f64().unwrap_or(0.0)));
                }
            } else if let Some(freq) = st["frequencies"].as_object() {
                for (label, count) in freq.iter().take(50) {
                    bars.push((format!("{label}: {count}"), count.as_f64().unwrap_or(0.0)));
                }
            }
            let top = bars.iter().map(|b| b.1).fold(0.0, f64::max);
            let width = if bars.is_empty() { 0.0 } else { 100.0 / bars.len() as f64 };
            let drawn: Vec<Value> = bars
                .iter()
                .enumerate()
                .map(|(i, (label, count))| {
                    let h = if top > 0.0 { 30.0 * count / top } else { 0.0 };
                    context! { x => format!("{:.2}", i as f64 * width), w => format!("{:.2}", (width - 0.4).max(0.2)),
                    y => format!("{:.2}", 30.0 - h), h => format!("{:.2}", h), label }
                })
                .collect();
            let summary: Vec<String> = ["min", "max", "mean", "median", "nan_count", "n_unique"]
                .iter()
                .filter_map(|k| st.get(*k).filter(|v| !v.is_null()).map(|v| format!("{} {}", k.replace('_', " "), short_number(v))))
                .collect();
            context! { name, kind => s["column_type"].as_str(), bars => drawn, summary => summary.join(" · ") }
        })
        .collect()
}

fn short_number(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() != 0.0 => format!("{f:.3}"),
        _ => v.to_string(),
    }
}
