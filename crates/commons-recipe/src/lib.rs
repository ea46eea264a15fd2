//! Recipes as data: what a run is, before any tensor exists. The engine (`commons-engine`, on
//! burn) runs them; the coordinator (`commons-compute`) parses, prices and validates them with
//! this crate alone, so it links no tensor library.
//!
//! - [`recipe`]: the TOML document, built-in recipes, `key=value` overrides, value checks.
//! - [`plan`]: the layer stack resolved against the input, every shape checked up front.
//! - [`cost`]: floating-point operations of training and evaluation, from the plan.
//! - [`report`]: the evaluation report and how shard reports merge.
//! - [`model_dir`]: `config.json` of a trained model directory.
//!
//! Invariant: nothing here reads a data set or allocates a tensor; every function is a pure
//! function of its inputs (and, for [`recipe::load`], one file).

pub mod cost;
mod error;
pub mod model_dir;
pub mod plan;
pub mod recipe;
pub mod report;

pub use error::RecipeError;
pub use recipe::{LoadedRecipe, Recipe, RecipeKind};
pub use report::EvalReport;
