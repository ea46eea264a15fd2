//! `commons train RECIPE --data PATH [--out DIR] [--set key=value]...`

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct TrainArgs {
    /// A built-in recipe (keras-mnist-mlp, mnist-cnn, fashion-mnist-cnn, lstm-sentiment, char-rnn,
    /// word2vec-skipgram, word2vec-cbow, glove) or a .toml file.
    pub recipe: String,
    /// The data directory or file; without it the recipe's data set is fetched by name.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the model directory is written.
    #[arg(long, default_value = "model")]
    pub out: PathBuf,
    /// Override a recipe value, e.g. `--set training.epochs=2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} {prefix} eta {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let mut current_epoch = 0;
    let mut on_progress = |p: &commons_engine::Progress| {
        if p.epoch != current_epoch {
            current_epoch = p.epoch;
            bar.set_length(p.steps_per_epoch as u64);
            bar.reset();
        }
        bar.set_position(p.step as u64);
        bar.set_message(format!("{}/{}", p.epoch, p.epochs));
        let loss = if p.loss.is_finite() { format!("loss {:.4} ", p.loss) } else { String::new() };
        bar.set_prefix(format!("{loss}{:.0} samples/s, run eta {:.0}s", p.samples_per_second, p.eta_seconds));
    };
    let loaded = commons_recipe::recipe::load_with(&args.recipe, &args.overrides)?;
    let outcome = commons_engine::run_recipe(&loaded, args.data.as_deref(), &args.out, &mut on_progress)
        .with_context(|| format!("training `{}`", args.recipe))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&outcome.test).context("metrics as JSON")?);
    println!("{}", outcome.out_dir.display());
    Ok(())
}
