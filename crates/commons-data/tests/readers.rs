//! Readers and splits on hand-made files: corrupt IDX headers, gzip round trip, CSV errors,
//! tokenisation and the split contract.

use std::io::Write;
use std::path::Path;

use commons_data::{DataError, corpus, csv_table, idx, labeled_text, split};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

fn sample_images() -> idx::IdxImages {
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 7 % 256) as u8).collect();
    idx::IdxImages { count: 3, rows: 4, cols: 5, pixels }
}

#[test]
fn idx_bad_magic_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-magic");
    let mut bytes = vec![0, 0, 8, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    bytes.push(0);
    write(&path, &bytes);
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::CorruptIdx { offset: 0, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("0x00000804") && message.contains("0x00000803"), "{message}");
    assert!(message.contains("bad-magic"), "{message}");
}

#[test]
fn idx_truncated_header_and_wrong_length_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated");
    write(&truncated, &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0]);
    let message = idx::read_images(&truncated).unwrap_err().to_string();
    assert!(message.contains("header truncated") && message.contains("16 bytes"), "{message}");

    let short = dir.path().join("short-body");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0x0000_0803u32.to_be_bytes());
    for d in [2u32, 28, 28] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(0u8, 28 * 28 + 10));
    write(&short, &bytes);
    let message = idx::read_images(&short).unwrap_err().to_string();
    assert!(message.contains("[2, 28, 28]") && message.contains("1584 bytes"), "{message}");

    // An image file handed to the label reader is caught by its magic number.
    let images = dir.path().join("images");
    idx::write_images(&images, &sample_images()).unwrap();
    let message = idx::read_labels(&images).unwrap_err().to_string();
    assert!(message.contains("expected 0x00000801"), "{message}");
}

#[test]
fn idx_gzip_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let images = sample_images();
    let raw = dir.path().join("images-idx3-ubyte");
    idx::write_images(&raw, &images).unwrap();
    let gz = dir.path().join("images-idx3-ubyte.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    encoder.write_all(&std::fs::read(&raw).unwrap()).unwrap();
    encoder.finish().unwrap();
    assert_eq!(idx::read_images(&raw).unwrap(), images);
    assert_eq!(idx::read_images(&gz).unwrap(), images);
    assert_eq!(idx::read_images(&gz).unwrap().image(2).unwrap(), &images.pixels[40..60]);

    let labels = vec![3u8, 1, 4, 1, 5, 9, 2, 6];
    let labels_path = dir.path().join("labels");
    idx::write_labels(&labels_path, &labels).unwrap();
    assert_eq!(idx::read_labels(&labels_path).unwrap(), labels);

    // A damaged gzip stream is a format error, not a panic.
    let mut damaged = std::fs::read(&gz).unwrap();
    let cut = damaged.len() / 2;
    damaged.truncate(cut);
    let damaged_path = dir.path().join("damaged.gz");
    write(&damaged_path, &damaged);
    let message = idx::read_images(&damaged_path).unwrap_err().to_string();
    assert!(message.contains("damaged.gz"), "{message}");
}

#[test]
fn split_is_golden_and_partitions() {
    // Golden: computed once with ChaCha8Rng::seed_from_u64(42) and the documented Fisher–Yates.
    // A change here changes every published split.
    assert_eq!(split::shuffled(10, 42), GOLDEN_SHUFFLE_10_SEED_42);
    let parts = split::split_indices(10, &[0.8, 0.2], 42);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].len(), 8);
    assert_eq!(parts[1].len(), 2);
    let mut all: Vec<usize> = parts.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());

    let big = split::split_indices(3000, &[0.7, 0.15, 0.15], 7);
    assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), vec![2100, 450, 450]);
    assert_eq!(big, split::split_indices(3000, &[0.7, 0.15, 0.15], 7), "same seed, same split");
    assert_ne!(big, split::split_indices(3000, &[0.7, 0.15, 0.15], 8), "another seed, another split");
    assert!(split::try_split_indices(10, &[0.5, 0.6], 1).is_err());
    assert!(split::try_split_indices(10, &[-0.5, 1.5], 1).is_err());
}

const GOLDEN_SHUFFLE_10_SEED_42: [usize; 10] = [9, 7, 2, 5, 0, 1, 4, 3, 8, 6];

#[test]
fn csv_label_out_of_range_names_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.csv");
    write(&path, b"x1,x2,species\n0.5,1.5,0\n2.0,3.0,2\n1.0,1.0,3\n");
    let err = csv_table::read_csv(&path, "species", Some(3)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::Table { row: 3, .. }), "{message}");
    assert!(message.contains("species") && message.contains("out of range 0..3"), "{message}");

    let table = csv_table::read_csv(&path, "species", Some(4)).unwrap();
    assert_eq!(table.labels, vec![0, 2, 3]);
    assert_eq!(table.feature_names, vec!["x1", "x2"]);
    assert_eq!(table.row(1).unwrap(), &[2.0, 3.0]);

    write(&path, b"x1,x2,species\n0.5,abc,0\n");
    let message = csv_table::read_csv(&path, "species", None).unwrap_err().to_string();
    assert!(message.contains("row 1") && message.contains("'x2'") && message.contains("\"abc\""), "{message}");
    let message = csv_table::read_csv(&path, "label", None).unwrap_err().to_string();
    assert!(message.contains("no label column 'label'"), "{message}");
}

#[test]
fn labeled_text_jsonl_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    write(&path, b"{\"sentence\": \"good film\", \"y\": 1}\n\n{\"sentence\": \"dull\", \"y\": \"0\"}\n{\"sentence\": \"x\", \"y\": -1}\n");
    let message = labeled_text::read_jsonl(&path, "sentence", "y").unwrap_err().to_string();
    assert!(message.contains("line 4") && message.contains("-1"), "{message}");
    write(&path, b"{\"sentence\": \"good film\", \"y\": 1}\n{\"sentence\": \"dull\", \"y\": \"0\"}\n");
    let rows = labeled_text::read_jsonl(&path, "sentence", "y").unwrap();
    assert_eq!(rows[1], labeled_text::LabeledText { text: "dull".into(), label: 0 });
}

#[test]
fn tokenizer_rules() {
    assert_eq!(
        corpus::tokenize("Don't STOP--'tis the 1st Café's day_off!"),
        vec!["don't", "stop", "tis", "the", "st", "café's", "day", "off"]
    );
    let dir = tempfile::tempdir().unwrap();
    let brown = dir.path().join("ca01");
    write(&brown, b"\n\tThe/at Fulton/np-tl County's/nn$ ,/, ``/`` over-all/jj 12/cd\n");
    let corpus = corpus::Corpus::new(vec![brown], corpus::CorpusFormat::BrownTagged);
    let mut tokens = Vec::new();
    let count = corpus.for_each_token(|t| tokens.push(t.to_string())).unwrap();
    assert_eq!(tokens, vec!["the", "fulton", "county's", "over", "all"]);
    assert_eq!(count, 5);
}
