//! Bad recipes and bad data end in errors that name the problem (and the recipe line), never
//! in a panic.

use std::path::Path;

use commons_recipe::recipe;

const HEADER: &str = r#"format_version = 1
name = "broken"
kind = "classification"

[data]
format = "idx"
dataset = "mnist"
input_shape = [28, 28]
scale = 255.0
num_classes = 10

[training]
loss = "sparse-categorical-crossentropy"
batch_size = 32
epochs = 1
seed = 1

[training.optimizer]
kind = "adam"
lr = 0.001
"#;

fn with_layers(layers: &str) -> String {
    format!("{HEADER}{layers}")
}

/// 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

fn mnist_like_dims() -> (commons_engine::model::InputKind, commons_engine::model::DataDims) {
    (commons_engine::model::InputKind::Features(vec![28, 28]), commons_engine::model::DataDims { num_classes: 10, vocab_size: 0 })
}

#[test]
fn unknown_layer_is_named_with_its_line() {
    let text = with_layers("\n[[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"densse\"\nunits = 10\n");
    let error = recipe::parse(&text, "broken.toml").expect_err("unknown layer must be rejected").to_string();
    assert!(error.contains("densse"), "{error}");
    assert!(error.contains("broken.toml"), "{error}");
    let line = line_of(&text, "densse");
    assert!(error.contains(&format!("line {line}")), "expected line {line} in: {error}");
}

#[test]
fn shape_mismatch_names_the_layer_and_line() {
    let text = with_layers(
        "\n[[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel_size = 3\n\n[[layers]]\ntype = \"dense\"\nunits = 10\n",
    );
    let loaded = recipe::parse(&text, "broken.toml").expect("syntax is fine");
    let (input, dims) = mnist_like_dims();
    let error = commons_engine::model::Plan::resolve(&loaded, input, dims).expect_err("conv2d after flatten must fail").to_string();
    assert!(error.contains("shape mismatch") && error.contains("conv2d"), "{error}");
    assert!(error.contains("[784]"), "the error should show the incoming shape: {error}");
    let header_line = line_of(&text, "type = \"conv2d\"") - 1;
    assert!(
        error.contains(&format!("line {header_line}")) || error.contains(&format!("line {}", header_line + 1)),
        "expected line {header_line}: {error}"
    );
}

#[test]
fn wrong_output_width_is_a_shape_mismatch() {
    let text = with_layers("\n[[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"dense\"\nunits = 7\nactivation = \"softmax\"\n");
    let loaded = recipe::parse(&text, "broken.toml").expect("syntax is fine");
    let (input, dims) = mnist_like_dims();
    let error = commons_engine::model::Plan::resolve(&loaded, input, dims).expect_err("7 outputs for 10 classes").to_string();
    assert!(error.contains("[7]") && error.contains("[10]"), "{error}");
}

#[test]
fn bad_values_are_rejected_with_the_field() {
    let dropout = with_layers("\n[[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"dropout\"\nrate = 1.5\n");
    let error = recipe::parse(&dropout, "broken.toml").expect_err("dropout 1.5").to_string();
    assert!(
        error.contains("dropout")
            && error.contains("rate")
            && error.contains(&format!("line {}", line_of(&dropout, "type = \"dropout\"") - 1))
            || error.contains(&format!("line {}", line_of(&dropout, "type = \"dropout\""))),
        "{error}"
    );

    let negative_lr = with_layers("\n[[layers]]\ntype = \"flatten\"\n").replace("lr = 0.001", "lr = -1.0");
    let error = recipe::parse(&negative_lr, "broken.toml").expect_err("negative lr").to_string();
    assert!(error.contains("`lr`") && error.contains(&format!("line {}", line_of(&negative_lr, "lr = -1.0"))), "{error}");

    let zero_batch = with_layers("\n[[layers]]\ntype = \"flatten\"\n").replace("batch_size = 32", "batch_size = 0");
    let error = recipe::parse(&zero_batch, "broken.toml").expect_err("batch 0").to_string();
    assert!(error.contains("batch_size"), "{error}");

    let unknown_field = with_layers("\n[[layers]]\ntype = \"dense\"\nunits = 10\nactivaton = \"relu\"\n");
    let error = recipe::parse(&unknown_field, "broken.toml").expect_err("typo in a field").to_string();
    assert!(error.contains("activaton"), "{error}");

    let future = HEADER.replace("format_version = 1", "format_version = 9");
    let error = recipe::parse(&future, "broken.toml").expect_err("unknown format version").to_string();
    assert!(error.contains("format_version") && error.contains('9'), "{error}");

    let error = recipe::load("no-such-recipe").expect_err("unknown recipe").to_string();
    assert!(error.contains("no-such-recipe") && error.contains("keras-mnist-mlp"), "{error}");
}

#[test]
fn overrides_go_through_validation() {
    let base = recipe::load("keras-mnist-mlp").expect("builtin");
    let changed =
        recipe::with_overrides(&base, &["training.epochs=2".into(), "training.optimizer.lr=0.01".into()]).expect("valid overrides");
    assert_eq!(changed.recipe.training.epochs, 2);
    assert_eq!(changed.recipe.training.optimizer.lr(), 0.01);
    let error = recipe::with_overrides(&base, &["training.epochs=0".into()]).expect_err("0 epochs").to_string();
    assert!(error.contains("epochs"), "{error}");
    let error = recipe::with_overrides(&base, &["training.epochs".into()]).expect_err("no value").to_string();
    assert!(error.contains("key=value"), "{error}");
}

fn write_idx_set(dir: &Path, labels: &[u8]) {
    let count = labels.len();
    let images = commons_data::idx::IdxImages { count, rows: 28, cols: 28, pixels: (0..count * 784).map(|i| (i % 251) as u8).collect() };
    for prefix in ["train", "t10k"] {
        commons_data::idx::write_images(&dir.join(format!("{prefix}-images-idx3-ubyte")), &images).expect("write images");
        commons_data::idx::write_labels(&dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).expect("write labels");
    }
}

fn keras_recipe() -> commons_recipe::recipe::Recipe {
    recipe::load("keras-mnist-mlp").expect("builtin").recipe
}

#[test]
fn corrupt_idx_header_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx_set(dir.path(), &[1, 2, 3]);
    let path = dir.path().join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[2] = 0x0c; // wrong element type in the magic number
    std::fs::write(&path, bytes).expect("write");
    let error = commons_engine::data::prepare(&keras_recipe(), dir.path(), None).expect_err("corrupt header").to_string();
    assert!(error.to_lowercase().contains("idx") && error.contains("train-images-idx3-ubyte"), "{error}");
}

#[test]
fn label_out_of_range_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx_set(dir.path(), &[1, 12, 3]);
    let error = commons_engine::data::prepare(&keras_recipe(), dir.path(), None).expect_err("label 12 of 10 classes").to_string();
    assert!(error.contains("label 12") && error.contains("out of range") && error.contains("10 classes"), "{error}");
}

#[test]
fn missing_data_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = commons_engine::data::prepare(&keras_recipe(), dir.path(), None).expect_err("empty dir").to_string();
    assert!(error.contains("train-images-idx3-ubyte"), "{error}");
}

#[test]
fn empty_corpus_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.txt"), "  \n\n").expect("write");
    let char_rnn = recipe::load("char-rnn").expect("builtin").recipe;
    let error = commons_engine::data::prepare(&char_rnn, dir.path(), None).expect_err("empty corpus").to_string();
    assert!(error.contains("corpus is empty"), "{error}");
}

#[test]
fn labelled_text_with_a_bad_label_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("reviews.json"), r#"[{"text": "great", "class": 1}, {"text": "awful", "class": 4}]"#).expect("write");
    let sentiment = recipe::load("lstm-sentiment").expect("builtin").recipe;
    let error = commons_engine::data::prepare(&sentiment, dir.path(), None).expect_err("label 4 of 2 classes").to_string();
    assert!(error.contains("label 4") && error.contains("2 classes"), "{error}");
}
