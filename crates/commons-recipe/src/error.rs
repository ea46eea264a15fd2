//! What can be wrong with a recipe. Every variant names the recipe and, where it can, the line.

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("unknown recipe `{name}`: not a built-in recipe ({builtins}) and no such file")]
    UnknownRecipe { name: String, builtins: String },

    #[error("reading recipe {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{origin}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    RecipeSyntax { origin: String, line: Option<usize>, message: String },

    #[error("{origin}{}: bad value for `{field}`: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    BadValue { origin: String, line: Option<usize>, field: String, reason: String },

    #[error("{origin} line {line}: layer `{layer}`: {reason}")]
    BadLayer { origin: String, line: usize, layer: String, reason: String },

    #[error("{origin} line {line}: shape mismatch at layer `{layer}`: {reason}")]
    ShapeMismatch { origin: String, line: usize, layer: String, reason: String },

    #[error("bad --set `{assignment}`: {reason}")]
    BadOverride { assignment: String, reason: String },

    #[error("shard reports: {0}")]
    Reports(String),
}
