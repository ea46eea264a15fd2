//! Repository identity: its kind and `namespace/name`, and how each appears in URLs and caches.

use std::fmt;

use crate::error::ClientError;

pub use commons_protocol::RepoKind;

/// A repository: kind plus `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoId {
    pub kind: RepoKind,
    pub namespace: String,
    pub name: String,
}

impl RepoId {
    /// Parses `namespace/name`; a bare `name` takes `default_namespace` (the caller's user).
    pub fn parse(kind: RepoKind, text: &str, default_namespace: Option<&str>) -> Result<Self, ClientError> {
        let (namespace, name) = match text.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => match default_namespace {
                Some(ns) => (ns.to_string(), text.to_string()),
                None => {
                    return Err(ClientError::Invalid(format!("{text:?} has no namespace: write it as namespace/name")));
                }
            },
        };
        for (part, what) in [(&namespace, "namespace"), (&name, "repository name")] {
            if part.is_empty() || part.contains('/') {
                return Err(ClientError::Invalid(format!("invalid {what} in {text:?}: expected namespace/name")));
            }
            if !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
                return Err(ClientError::Invalid(format!("invalid {what} {part:?}: only letters, digits, '-', '_' and '.' are allowed")));
            }
        }
        Ok(Self { kind, namespace, name })
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Folder of this repo in the Hugging Face cache: `models--ns--name`.
    pub fn cache_folder_name(&self) -> String {
        format!("{}--{}--{}", self.kind.plural(), self.namespace, self.name)
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_map_to_cache_folders() {
        let id = RepoId::parse(RepoKind::Dataset, "alice/corpus", None).expect("valid name");
        assert_eq!(id.cache_folder_name(), "datasets--alice--corpus");
        let bare = RepoId::parse(RepoKind::Algorithm, "sorter", Some("bob")).expect("valid bare name");
        assert_eq!(bare.full_name(), "bob/sorter");
        assert_eq!(bare.cache_folder_name(), "algorithms--bob--sorter");
        assert!(RepoId::parse(RepoKind::Model, "sorter", None).is_err());
        assert!(RepoId::parse(RepoKind::Model, "a/b/c", None).is_err());
        assert!(RepoId::parse(RepoKind::Model, "a/b c", None).is_err());
        assert!(RepoId::parse(RepoKind::Model, "/b", None).is_err());
    }
}
