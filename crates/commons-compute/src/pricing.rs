//! What a job's data holds, measured from the data itself.
//!
//! A dataset card's `num_examples` is whatever its author wrote, and the price of a job (the
//! escrow, and what each validated result pays) follows from the number of examples. So the
//! count comes from the files the workers will read: the header of an IDX label file, the
//! records of CSV and JSON files, the characters of a text corpus, streamed through the content
//! store (gzip included) without holding a file in memory. Sizes are `u64` and every product
//! saturates: no declared number can wrap a price.

use std::io::Write;

use commons_db::{FileEntry, Repo};
use commons_recipe::recipe::{DataFormat, LoadedRecipe};
use futures::StreamExt;

use crate::Coordinator;
use crate::error::{ComputeError, Result};

/// Examples of the splits a training run reads: `train` trained on (every epoch), `test` scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitSizes {
    pub train: u64,
    pub test: u64,
}

/// Most bytes of data the coordinator reads to price one job; a larger data set is refused with
/// a clear error rather than tying up the server.
const MAX_BYTES_MEASURED: u64 = 8 << 30;

/// What is counted in a file's (decompressed) bytes.
#[derive(Clone, Copy)]
enum Count {
    /// Non-empty lines (CSV rows, JSONL records).
    Lines,
    /// Objects at the top level of a JSON array.
    ArrayObjects,
    /// UTF-8 characters.
    Chars,
    /// The item count of an IDX file: the big-endian u32 after the 4-byte magic.
    IdxItems,
}

/// A `Write` sink that counts as bytes pass through (after decompression, where there is any).
struct Counter {
    what: Count,
    n: u64,
    /// Lines: the current line has a non-blank byte. JSON: inside a string / after a backslash.
    in_line: bool,
    in_string: bool,
    escaped: bool,
    depth: u32,
    /// IDX: the first 8 bytes.
    header: Vec<u8>,
}

impl Counter {
    fn new(what: Count) -> Self {
        Self { what, n: 0, in_line: false, in_string: false, escaped: false, depth: 0, header: Vec::new() }
    }

    fn total(&self) -> Result<u64> {
        match self.what {
            Count::Lines => Ok(self.n + u64::from(self.in_line)),
            Count::IdxItems => {
                let header: [u8; 8] = self
                    .header
                    .as_slice()
                    .try_into()
                    .map_err(|_| ComputeError::bad_request("an IDX file is shorter than its 8-byte header"))?;
                Ok(u64::from(u32::from_be_bytes([header[4], header[5], header[6], header[7]])))
            }
            _ => Ok(self.n),
        }
    }

    /// Whether the count is known without reading further.
    fn done(&self) -> bool {
        matches!(self.what, Count::IdxItems) && self.header.len() == 8
    }
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.what {
            Count::Lines => {
                for &b in buf {
                    if b == b'\n' {
                        self.n += u64::from(self.in_line);
                        self.in_line = false;
                    } else if !b.is_ascii_whitespace() {
                        self.in_line = true;
                    }
                }
            }
            Count::Chars => self.n += buf.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64,
            Count::IdxItems => {
                let want = 8 - self.header.len();
                self.header.extend_from_slice(&buf[..want.min(buf.len())]);
            }
            Count::ArrayObjects => {
                for &b in buf {
                    if self.in_string {
                        match (self.escaped, b) {
                            (true, _) => self.escaped = false,
                            (false, b'\\') => self.escaped = true,
                            (false, b'"') => self.in_string = false,
                            _ => {}
                        }
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'[' | b'{' => {
                            if b == b'{' && self.depth == 1 {
                                self.n += 1;
                            }
                            self.depth = self.depth.saturating_add(1);
                        }
                        b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A decompressing (for `.gz`) or plain pass-through into a [`Counter`].
enum Sink {
    Plain(Counter),
    Gzip(Box<flate2::write::GzDecoder<Counter>>),
}

impl Sink {
    fn counter(&self) -> &Counter {
        match self {
            Sink::Plain(c) => c,
            Sink::Gzip(d) => d.get_ref(),
        }
    }
}

impl Coordinator {
    /// The example counts of a dataset revision as `loaded`'s data section reads it.
    pub(crate) async fn split_sizes(&self, repo: &Repo, commit: &str, loaded: &LoadedRecipe) -> Result<SplitSizes> {
        let data = &loaded.recipe.data;
        // Workers read the files at the top of the snapshot.
        let files: Vec<FileEntry> = self.repos.tree(repo, commit).await?.iter().filter(|f| !f.path.contains('/')).cloned().collect();
        let named = |stem: &str| files.iter().find(|f| f.path == stem || f.path == format!("{stem}.gz"));
        let with_suffix =
            |suffixes: &[&str]| -> Vec<&FileEntry> { files.iter().filter(|f| suffixes.iter().any(|s| f.path.ends_with(s))).collect() };
        let total: u64 = files.iter().map(|f| f.size.max(0) as u64).sum();
        if total > MAX_BYTES_MEASURED && !matches!(data.format, DataFormat::Idx) {
            return Err(ComputeError::bad_request(format!(
                "dataset {} holds {total} bytes; jobs are priced by counting its examples, and this hub measures at most {MAX_BYTES_MEASURED}",
                repo.full_name()
            )));
        }
        let fraction = |n: u64, f: f64| (n as f64 * f.clamp(0.0, 1.0)) as u64;
        let train_fraction = 1.0 - data.validation_fraction - data.test_fraction;
        let sizes = match data.format {
            DataFormat::Idx => {
                let missing = |stem: &str| ComputeError::bad_request(format!("dataset {} has no {stem} (or {stem}.gz)", repo.full_name()));
                let train = named("train-labels-idx1-ubyte").ok_or_else(|| missing("train-labels-idx1-ubyte"))?;
                let test = named("t10k-labels-idx1-ubyte").ok_or_else(|| missing("t10k-labels-idx1-ubyte"))?;
                let train = self.count(train, Count::IdxItems).await?;
                SplitSizes { train: train - fraction(train, data.validation_fraction), test: self.count(test, Count::IdxItems).await? }
            }
            DataFormat::Csv => {
                let mut rows = 0u64;
                for file in with_suffix(&[".csv", ".csv.gz"]) {
                    // The header row is not an example.
                    rows = rows.saturating_add(self.count(file, Count::Lines).await?.saturating_sub(1));
                }
                SplitSizes { train: fraction(rows, train_fraction), test: fraction(rows, data.test_fraction) }
            }
            DataFormat::JsonText => {
                let mut records = 0u64;
                for file in with_suffix(&[".json", ".jsonl"]) {
                    let what = if file.path.ends_with(".jsonl") { Count::Lines } else { Count::ArrayObjects };
                    records = records.saturating_add(self.count(file, what).await?);
                }
                SplitSizes { train: fraction(records, train_fraction), test: fraction(records, data.test_fraction) }
            }
            DataFormat::Text => {
                let mut chars = 0u64;
                for file in with_suffix(&[".txt", ".cor"]) {
                    chars = chars.saturating_add(self.count(file, Count::Chars).await?);
                }
                // A character model trains on windows of `sequence_length` characters.
                let window = data.input_shape.first().copied().unwrap_or(1).max(1) as u64;
                let windows = |n: u64| n.saturating_sub(1) / window;
                SplitSizes { train: windows(fraction(chars, train_fraction)), test: windows(fraction(chars, data.test_fraction)) }
            }
        };
        if sizes.train == 0 || sizes.test == 0 {
            return Err(ComputeError::bad_request(format!(
                "dataset {} has {} training and {} test examples for this recipe's data section; both must be at least 1",
                repo.full_name(),
                sizes.train,
                sizes.test
            )));
        }
        tracing::debug!(dataset = %repo.full_name(), train = sizes.train, test = sizes.test, "measured the data set");
        Ok(sizes)
    }

    /// Streams one stored file (gunzipped when its name ends in `.gz`) through a counter.
    async fn count(&self, file: &FileEntry, what: Count) -> Result<u64> {
        let stream = self.repos.stream_file(file).await?;
        let mut stream = std::pin::pin!(stream);
        let mut sink = if file.path.ends_with(".gz") {
            Sink::Gzip(Box::new(flate2::write::GzDecoder::new(Counter::new(what))))
        } else {
            Sink::Plain(Counter::new(what))
        };
        let unreadable = |e: std::io::Error| ComputeError::bad_request(format!("{} cannot be read: {e}", file.path));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            match &mut sink {
                Sink::Plain(c) => c.write_all(&chunk).map_err(unreadable)?,
                Sink::Gzip(d) => d.write_all(&chunk).map_err(unreadable)?,
            }
            if sink.counter().done() {
                break;
            }
        }
        if let Sink::Gzip(d) = &mut sink
            && !d.get_ref().done()
        {
            d.try_finish().map_err(unreadable)?;
        }
        sink.counter().total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(what: Count, bytes: &[u8]) -> u64 {
        let mut c = Counter::new(what);
        // Fed in small pieces, as a stream arrives.
        for piece in bytes.chunks(3) {
            c.write_all(piece).unwrap();
        }
        c.total().unwrap()
    }

    #[test]
    fn counts_come_from_the_bytes_whatever_they_are_split_into() {
        assert_eq!(count(Count::Lines, b"a,b\n1,2\n\n3,4"), 3);
        assert_eq!(count(Count::ArrayObjects, br#"[{"text": "a } { [", "label": 1}, {"text": "\"{", "label": 0}]"#), 2);
        assert_eq!(count(Count::Chars, "héllo".as_bytes()), 5);
        assert_eq!(count(Count::IdxItems, &[0, 0, 8, 1, 0, 0, 0xEA, 0x60, 7, 7]), 60_000);
    }
}
