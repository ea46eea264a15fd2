//! Finishing a batch-inference job: the agreed predictions of its units, joined in split order,
//! become one Parquet file (and a card saying where they came from) committed to the submitter's
//! dataset repository, where the viewer, the Hub clients and `datasets` read them.

use commons_db::RepoKind;
use commons_protocol::{Agreed, Output, PinnedRepo, Predictions, verification_of, verification_text};
use commons_repo::Change;
use serde_json::{Value, json};

use crate::error::{ComputeError, Result};
use crate::{Coordinator, now};

/// What a predict job was asked to do (its spec's fields).
pub(crate) struct PredictJob<'a> {
    pub model: &'a PinnedRepo,
    pub dataset: &'a PinnedRepo,
    pub split: &'a str,
    pub output: &'a str,
}

impl Coordinator {
    /// Commits a finished predict job's predictions to its output repository and returns the
    /// job's result: where the file is, how many rows, how often the prediction is the label.
    pub(crate) async fn publish_predictions(&self, job_id: i64, owner: &str, job: PredictJob<'_>) -> Result<Value> {
        let corrupt = |what: String| ComputeError::Corrupt(format!("job {job_id}: {what}"));
        let (outputs, agreed) = self.accepted_per_unit(job_id).await?;
        let mut parts: Vec<Predictions> = Vec::with_capacity(outputs.len());
        for output in outputs {
            let Output::Predict { predictions, .. } = output else { return Err(corrupt("an accepted result is not predictions".into())) };
            parts.push(predictions);
        }
        let table = joined(&parts).map_err(corrupt)?;
        let (rows, hits) = (table.rows.len(), table.hits());
        let labels = parts.first().map(|p| p.labels.clone()).unwrap_or_default();
        let repo = self
            .repos
            .find_as_system(RepoKind::Dataset, owner, job.output)
            .await?
            .ok_or_else(|| ComputeError::Gone(format!("the output repository datasets/{owner}/{} was deleted", job.output)))?;
        let path = format!("data/{}-00000-of-00001.parquet", job.split);
        let parquet = commons_viewer::predictions_parquet(table.rows, &table.classes, table.scores, &table.targets, &labels)
            .map_err(|e| corrupt(format!("writing the predictions: {e}")))?;
        let groups: Vec<Vec<Agreed>> = agreed.into_iter().map(|(_, group)| group).collect();
        let card = card(job_id, &job, &repo.name, rows, hits, &groups)?;
        let title =
            format!("Predictions of {} on the {} split of {} (job {job_id})", job.model.display(), job.split, job.dataset.display());
        let message = format!("Each unit's predictions were computed by independent workers who agreed bit for bit.\n\njob {job_id}");
        let info = commons_db::CommitInfo { author: "commons", title: &title, message: &message };
        let changes =
            vec![Change::Put { path: path.clone(), bytes: parquet }, Change::Put { path: "README.md".into(), bytes: card.into_bytes() }];
        let parent = self.repos.pin(&repo, "main").await?;
        let revision = self.repos.commit_onto(&repo, "main", &parent, changes, &info, now()).await?;
        tracing::info!(job = job_id, repo = %repo.full_name(), %revision, rows, "predictions published");
        let workers: Vec<Value> =
            groups.iter().flatten().map(|a| json!({ "worker": a.worker, "owner": a.owner, "assignment": a.assignment })).collect();
        Ok(json!({
            "predictions": { "repo": repo.full_name(), "revision": revision, "path": path, "rows": rows },
            "label_agreement": if rows > 0 { hits as f64 / rows as f64 } else { 0.0 },
            "provenance": { "model": job.model, "dataset": job.dataset, "split": job.split, "agreed": workers },
        }))
    }
}

/// The whole split's predictions, column by column.
#[derive(Debug)]
struct Columns {
    rows: Vec<i64>,
    classes: Vec<u32>,
    scores: Vec<f32>,
    targets: Vec<u32>,
}

impl Columns {
    /// How many predictions equal the example's label.
    fn hits(&self) -> usize {
        self.classes.iter().zip(&self.targets).filter(|(p, t)| p == t).count()
    }
}

/// The columns of the whole split, from its units' predictions in unit order (each starting
/// where the one before ended, all naming the same classes).
fn joined(parts: &[Predictions]) -> std::result::Result<Columns, String> {
    let rows: usize = parts.iter().map(Predictions::len).sum();
    let (mut row, mut classes, mut scores, mut targets) =
        (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    for part in parts {
        if let Some(problem) = part.problem() {
            return Err(format!("accepted predictions are malformed: {problem}"));
        }
        if part.first_row != row.len() {
            return Err(format!("a unit's predictions start at row {}, after {} rows", part.first_row, row.len()));
        }
        if part.labels != parts[0].labels {
            return Err("the units' predictions name different classes".into());
        }
        row.extend((part.first_row..part.first_row + part.len()).map(|r| r as i64));
        classes.extend_from_slice(&part.classes);
        scores.extend_from_slice(&part.scores);
        targets.extend_from_slice(&part.targets);
    }
    Ok(Columns { rows: row, classes, scores, targets })
}

/// The output repository's card: what the file holds, where it came from, who computed it.
fn card(job_id: i64, job: &PredictJob<'_>, name: &str, rows: usize, hits: usize, groups: &[Vec<Agreed>]) -> Result<String> {
    let link = |kind: RepoKind, pinned: &PinnedRepo| {
        let prefix = match kind {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
            RepoKind::Algorithm => "algorithms/",
        };
        format!("[{}](/{prefix}{}/tree/{})", pinned.display(), pinned.repo, pinned.revision)
    };
    let agreement = if rows > 0 { 100.0 * hits as f64 / rows as f64 } else { 0.0 };
    let all: Vec<Agreed> = groups.iter().flatten().cloned().collect();
    let (kind, workers, owners) = verification_of(&all);
    let mut body = format!(
        "# {name}\n\nThe class {model} predicts for each of the {rows} examples of the `{split}` split of {dataset}, computed by \
         Commons job {job_id} in {units} unit(s).\n\n\
         | column | meaning |\n|---|---|\n\
         | `row` | the example's position in the split |\n\
         | `prediction` | the most likely class (the first on a tie) |\n\
         | `score` | the probability the model gives it |\n\
         | `label` | the example's own label in the dataset |\n\n\
         The prediction equals the label for {hits} of {rows} examples ({agreement:.2}%).\n\n\
         ## Verification\n\n{verification}\n",
        model = link(RepoKind::Model, job.model),
        dataset = link(RepoKind::Dataset, job.dataset),
        split = job.split,
        units = groups.len(),
        verification = verification_text(kind, workers, owners, &all),
    );
    for (unit, group) in groups.iter().enumerate() {
        let names: Vec<String> = group.iter().map(|a| format!("{} ({})", a.worker, a.owner)).collect();
        body.push_str(&format!("- unit {}: {}\n", unit + 1, names.join(", ")));
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("tags".into(), json!(["predictions", "commons"]));
    metadata.insert("source_datasets".into(), json!([job.dataset.repo]));
    metadata.insert("base_model".into(), json!(job.model.repo));
    let card = commons_card::Card { metadata, body };
    card.render().map_err(|e| ComputeError::Corrupt(format!("the predictions card of job {job_id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first_row: usize, classes: Vec<u32>) -> Predictions {
        let n = classes.len();
        Predictions { first_row, labels: vec!["no".into(), "yes".into()], classes, scores: vec![0.75; n], targets: vec![1; n] }
    }

    #[test]
    fn units_join_in_split_order_or_not_at_all() {
        let whole = joined(&[part(0, vec![0, 1]), part(2, vec![1, 1, 0])]).expect("contiguous");
        assert_eq!(whole.rows, [0, 1, 2, 3, 4]);
        assert_eq!(whole.classes, [0, 1, 1, 1, 0]);
        assert_eq!(whole.hits(), 3);
        assert!(joined(&[part(0, vec![0, 1]), part(3, vec![1])]).unwrap_err().contains("start at row 3, after 2 rows"));
        assert!(joined(&[part(2, vec![1]), part(0, vec![0, 1])]).is_err(), "out of order");
        let mut renamed = part(2, vec![1]);
        renamed.labels[1] = "maybe".into();
        assert!(joined(&[part(0, vec![0, 1]), renamed]).unwrap_err().contains("different classes"));
        let mut spoilt = part(0, vec![2]);
        spoilt.targets = vec![0];
        assert!(joined(&[spoilt]).unwrap_err().contains("malformed"));
    }
}
