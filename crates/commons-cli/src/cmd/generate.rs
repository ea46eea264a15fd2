//! `commons generate MODEL --prompt TEXT`: a trained character language model continues a
//! prompt, printed as it is drawn. MODEL is a model directory or a model repository on a hub.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use commons_engine::sample::{Generator, Sampling};

use super::client::HubArgs;

#[derive(Args)]
pub struct GenerateArgs {
    /// A model directory written by `commons train` (a `char-language-model` recipe such as
    /// `char-rnn`), or a model repository (`namespace/name`) on the hub.
    pub model: String,
    /// The text to continue.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Characters to add.
    #[arg(long, default_value_t = 200)]
    pub length: usize,
    /// Below 1 keeps to the likeliest characters, above 1 takes more chances.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Same seed, same text.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The repository's branch, tag or commit, when MODEL is a repository.
    #[arg(long, default_value = "main")]
    pub revision: String,
    #[command(flatten)]
    pub hub: HubArgs,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let dir = super::predict::model_dir(&args.model, &args.hub, &args.revision)?;
    let generator = Generator::load(&dir).with_context(|| format!("loading the model in {}", dir.display()))?;
    let sampling = Sampling { length: args.length, temperature: args.temperature, seed: args.seed };
    let mut stdout = std::io::stdout().lock();
    // The prompt is written with the first character drawn, so that a refusal prints nothing.
    let mut started = false;
    let mut failed = None;
    generator.generate(&args.prompt, sampling, &mut |text| {
        // A closed pipe (`| head`) ends the output; other write errors are reported after.
        if failed.is_none() {
            let prompt = if started { "" } else { args.prompt.as_str() };
            started = true;
            failed = write!(stdout, "{prompt}{text}").and_then(|()| stdout.flush()).err();
        }
    })?;
    if !started {
        write!(stdout, "{}", args.prompt)?;
    }
    if let Some(e) = failed {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing the text");
        }
        return Ok(());
    }
    writeln!(stdout)?;
    Ok(())
}
