//! The hub CLI as a person uses it, against a real `commons serve`: login, repo create, upload
//! (regular files inline, a 12 MB file through multipart LFS), ls, log, download into the
//! Hugging Face cache layout, cache reuse, resume, --include, --local-dir and error messages.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use commons_client::FileDigest;
use support::{Hub, python_venv};

fn commons() -> Command {
    let mut cmd = Command::new(support::BIN);
    for var in ["HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the CLI with `HF_HOME` = `home` (token file, endpoint, cache all live there).
fn cli(home: &Path, args: &[&str]) -> Output {
    commons().env("HF_HOME", home).args(args).output().expect("run commons")
}

fn ok(out: Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "command failed:\nstdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

fn fails(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected a failure, got success:\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    stderr
}

fn last_line(s: &str) -> &str {
    s.lines().last().expect("a line on stdout").trim()
}

/// Deterministic incompressible bytes (xorshift), so the test data is the same on every run.
fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime")
}

#[test]
fn login_upload_list_log_download_resume_and_errors() {
    let started = Instant::now();
    let hub = Hub::start();
    let url = hub.url();
    let home_dir = tempfile::tempdir().expect("HF_HOME");
    let home = home_dir.path();

    // A bad token is refused and nothing is saved.
    let err = fails(cli(home, &["login", "--token", "not-a-token", "--endpoint", &url]));
    assert!(err.contains("Invalid credentials"), "{err}");
    assert!(!home.join("token").exists());

    let (out, _) = ok(cli(home, &["login", "--token", &hub.token, "--endpoint", &url]));
    assert!(out.contains("as alice"), "{out}");
    assert_eq!(std::fs::read_to_string(home.join("token")).expect("token file").trim(), hub.token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("token")).expect("token file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    assert_eq!(std::fs::read_to_string(home.join("commons_endpoint")).expect("endpoint file").trim(), url);

    // From here on, endpoint and token come from what login saved.
    let (out, _) = ok(cli(home, &["repo", "create", "demo"]));
    assert_eq!(last_line(&out), format!("{}/alice/demo", url));
    let err = fails(cli(home, &["repo", "create", "alice/demo"]));
    assert!(err.contains("already exists"), "{err}");
    ok(cli(home, &["repo", "create", "alice/demo", "--exist-ok"]));

    let src = tempfile::tempdir().expect("source dir");
    let folder = src.path().join("model");
    std::fs::create_dir_all(folder.join("sub")).expect("dirs");
    std::fs::write(folder.join("README.md"), "# demo\nA test model.\n").expect("write");
    std::fs::write(folder.join("sub/notes.txt"), "nested notes\n").expect("write");
    // Same content as README.md: one blob in the cache, fetched once, two snapshot links.
    std::fs::write(folder.join("sub/copy.md"), "# demo\nA test model.\n").expect("write");
    let weights = pseudo_random(12 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(folder.join("weights.bin"), &weights).expect("write");
    let folder_arg = folder.to_str().expect("utf-8");

    let (out, err) = ok(cli(home, &["upload", "alice/demo", folder_arg, "--message", "First weights"]));
    let commit_url = last_line(&out);
    let commit = commit_url.rsplit('/').next().expect("commit id").to_string();
    assert!(commit_url.starts_with(&format!("{}/alice/demo/commit/", url)), "{commit_url}");
    assert_eq!(commit.len(), 40, "{commit_url}");
    assert!(err.contains("3 regular and 1 LFS"), "{err}");

    // The same folder again changes nothing: no new commit.
    let (_, err) = ok(cli(home, &["upload", "alice/demo", folder_arg]));
    assert!(err.contains("no changes"), "{err}");

    let (out, _) = ok(cli(home, &["ls", "alice/demo"]));
    let row = |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in ls:\n{out}")).to_string();
    let w = row("weights.bin");
    assert!(w.contains("12582912") && w.trim_end().ends_with("yes"), "{w}");
    assert!(row("sub/notes.txt").trim_end().ends_with("no"));
    assert!(row("README.md").contains(" 21 "), "{}", row("README.md"));

    let (out, _) = ok(cli(home, &["log", "alice/demo"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "creation + one upload:\n{out}");
    assert!(lines[0].starts_with(&commit) && lines[0].contains("alice") && lines[0].ends_with("First weights"), "{}", lines[0]);

    // Download into the Hugging Face cache layout.
    let (out, err) = ok(cli(home, &["download", "alice/demo"]));
    let repo_dir = home.join("hub/models--alice--demo");
    let snapshot = repo_dir.join("snapshots").join(&commit);
    assert_eq!(PathBuf::from(last_line(&out)), snapshot);
    assert!(err.contains("4 fetched"), "{err}");
    assert_eq!(std::fs::read_to_string(repo_dir.join("refs/main")).expect("refs/main"), commit);
    let weights_digest = FileDigest::of_file(&folder.join("weights.bin")).expect("digest");
    let notes_digest = FileDigest::of_file(&folder.join("sub/notes.txt")).expect("digest");
    assert_eq!(
        std::fs::read_link(snapshot.join("weights.bin")).expect("symlink"),
        PathBuf::from(format!("../../blobs/{}", weights_digest.sha256))
    );
    assert_eq!(
        std::fs::read_link(snapshot.join("sub/notes.txt")).expect("symlink"),
        PathBuf::from(format!("../../../blobs/{}", notes_digest.git_sha1))
    );
    assert_eq!(FileDigest::of_file(&snapshot.join("weights.bin")).expect("digest").sha256, weights_digest.sha256);
    assert_eq!(std::fs::read(snapshot.join("README.md")).expect("read"), std::fs::read(folder.join("README.md")).expect("read"));
    assert!(snapshot.join(".gitattributes").exists());
    assert_eq!(
        std::fs::read_link(snapshot.join("sub/copy.md")).expect("symlink"),
        PathBuf::from("../").join(std::fs::read_link(snapshot.join("README.md")).expect("symlink")),
        "identical files share one blob"
    );

    // A second download finds every blob in the cache and touches none.
    let weights_blob = repo_dir.join("blobs").join(&weights_digest.sha256);
    let before = mtime(&weights_blob);
    std::thread::sleep(Duration::from_millis(20));
    let (_, err) = ok(cli(home, &["download", "alice/demo"]));
    assert!(err.contains("0 fetched") && err.contains("5 from the cache"), "{err}");
    assert_eq!(mtime(&weights_blob), before);

    // Resume: an interrupted download left the first 5 MiB; only the rest is fetched.
    std::fs::remove_file(&weights_blob).expect("remove blob");
    let partial = repo_dir.join("blobs").join(format!("{}.incomplete", weights_digest.sha256));
    std::fs::write(&partial, &weights[..5 * 1024 * 1024]).expect("write partial");
    let (_, err) = ok(cli(home, &["download", "alice/demo"]));
    assert!(err.contains("1 fetched (1 resumed, 7.00 MiB)"), "{err}");
    assert!(!partial.exists());
    assert_eq!(FileDigest::of_file(&weights_blob).expect("digest").sha256, weights_digest.sha256);

    // A corrupt partial file is caught by the sha256 check, discarded, and the next run recovers.
    std::fs::remove_file(&weights_blob).expect("remove blob");
    std::fs::write(&partial, vec![0xAAu8; 1024 * 1024]).expect("write corrupt partial");
    let err = fails(cli(home, &["download", "alice/demo"]));
    assert!(err.contains("weights.bin") && err.contains("sha256"), "{err}");
    assert!(!partial.exists() && !weights_blob.exists());
    ok(cli(home, &["download", "alice/demo"]));
    assert_eq!(FileDigest::of_file(&weights_blob).expect("digest").sha256, weights_digest.sha256);

    // --include fetches only what matches, into a fresh cache; --local-dir gets plain files.
    let other_home = tempfile::tempdir().expect("second HF_HOME");
    let local = src.path().join("local");
    let (out, _) = ok(commons()
        .env("HF_HOME", other_home.path())
        .args(["download", "alice/demo", "--include", "*.md", "--include", "sub/", "--endpoint", &url])
        .args(["--local-dir", local.to_str().expect("utf-8")])
        .output()
        .expect("run"));
    assert_eq!(PathBuf::from(last_line(&out)), local);
    let other_snapshot = other_home.path().join("hub/models--alice--demo/snapshots").join(&commit);
    assert!(other_snapshot.join("README.md").exists() && other_snapshot.join("sub/notes.txt").exists());
    assert!(!other_snapshot.join("weights.bin").exists() && !other_snapshot.join(".gitattributes").exists());
    assert!(!std::fs::symlink_metadata(local.join("README.md")).expect("local file").file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(local.join("sub/notes.txt")).expect("read"), "nested notes\n");

    // Datasets: a single file under a new name, on a new branch.
    ok(cli(home, &["repo", "create", "alice/corpus", "--type", "dataset"]));
    let (out, _) = ok(cli(home, &["upload", "alice/corpus", folder.join("sub/notes.txt").to_str().expect("utf-8"), "--type", "dataset"]));
    assert!(last_line(&out).contains("/datasets/alice/corpus/commit/"), "{out}");
    // The 12 MB object is already stored (in alice/demo): the batch API asks for nothing.
    let (_, err) = ok(cli(home, &["upload", "alice/corpus", folder.join("weights.bin").to_str().expect("utf-8"), "--type", "dataset"]));
    assert!(err.contains("0 regular and 1 LFS file(s) (1 already on the hub") && err.contains(", 0 B sent"), "{err}");
    let file = folder.join("README.md");
    ok(cli(
        home,
        &[
            "upload",
            "alice/corpus",
            file.to_str().expect("utf-8"),
            "--type",
            "dataset",
            "--path-in-repo",
            "docs/card.md",
            "--revision",
            "draft",
        ],
    ));
    let (out, _) = ok(cli(home, &["download", "alice/corpus", "--type", "dataset", "--revision", "draft"]));
    let snap = PathBuf::from(last_line(&out));
    assert!(snap.starts_with(home.join("hub/datasets--alice--corpus/snapshots")));
    assert_eq!(std::fs::read_to_string(snap.join("docs/card.md")).expect("read"), "# demo\nA test model.\n");
    assert!(snap.join("notes.txt").exists(), "the branch starts from main");
    assert!(home.join("hub/datasets--alice--corpus/refs/draft").exists());

    // A private repository is invisible without the owner's token.
    ok(cli(home, &["repo", "create", "alice/secret", "--private"]));
    ok(cli(home, &["ls", "alice/secret"]));
    let anonymous = tempfile::tempdir().expect("HF_HOME without a token");
    let err = fails(cli(anonymous.path(), &["ls", "alice/secret", "--endpoint", &url]));
    assert!(err.contains("alice/secret not found"), "{err}");

    // Errors a person makes: clear messages, non-zero exit, no panic.
    let err = fails(cli(home, &["download", "alice/missing"]));
    assert!(err.contains("alice/missing not found"), "{err}");
    let err = fails(cli(home, &["ls", "alice/demo", "--type", "dataset"]));
    assert!(err.contains("alice/demo not found"), "{err}");
    let err = fails(cli(home, &["log", "alice/demo", "--revision", "nope"]));
    assert!(err.contains("nope"), "{err}");
    let err = fails(cli(home, &["download", "alice/demo", "--include", "*.xyz"]));
    assert!(err.contains("matches --include"), "{err}");
    let err = fails(cli(home, &["upload", "alice/demo", src.path().join("absent").to_str().expect("utf-8")]));
    assert!(err.contains("absent"), "{err}");
    let err = fails(cli(home, &["ls", "alice/demo", "--endpoint", "http://127.0.0.1:9"]));
    assert!(err.contains("127.0.0.1:9"), "{err}");

    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// The cache is the one the Python client uses: what `commons download` fetched,
/// `huggingface_hub` finds offline, and what `huggingface_hub` fetched, `commons download`
/// does not fetch again.
#[test]
fn cache_is_shared_with_huggingface_hub() {
    let python = python_venv("huggingface_hub", "2.4.0");
    let hub = Hub::start();
    let url = hub.url();
    let src = tempfile::tempdir().expect("source dir");
    std::fs::write(src.path().join("config.json"), "{\"layers\": 2}\n").expect("write");
    std::fs::write(src.path().join("model.safetensors"), pseudo_random(3 * 1024 * 1024 + 7, 42)).expect("write");
    let mine = tempfile::tempdir().expect("HF_HOME for commons");
    let theirs = tempfile::tempdir().expect("HF_HOME for huggingface_hub");
    let with_hub = |home: &Path, args: &[&str]| {
        let mut cmd = commons();
        cmd.env("HF_HOME", home).env("HF_ENDPOINT", &url).env("HF_TOKEN", &hub.token).args(args);
        cmd.output().expect("run commons")
    };
    ok(with_hub(mine.path(), &["repo", "create", "alice/shared"]));
    ok(with_hub(mine.path(), &["upload", "alice/shared", src.path().to_str().expect("utf-8")]));

    let python_env = |home: &Path| {
        let mut cmd = Command::new(&python);
        cmd.env("HF_HOME", home)
            .env("HF_ENDPOINT", &url)
            .env("HF_TOKEN", &hub.token)
            .env("HF_HUB_DISABLE_XET", "1")
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env_remove("HF_HUB_CACHE");
        cmd
    };

    // commons downloads; Python, offline, resolves `main` through refs/main to the same files.
    let (out, _) = ok(with_hub(mine.path(), &["download", "alice/shared"]));
    let snapshot = PathBuf::from(last_line(&out));
    let script = "from huggingface_hub import hf_hub_download, snapshot_download\n\
                  print(hf_hub_download('alice/shared', 'model.safetensors'))\n\
                  print(snapshot_download('alice/shared'))";
    let (out, _) = ok(python_env(mine.path()).env("HF_HUB_OFFLINE", "1").args(["-c", script]).output().expect("python"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(PathBuf::from(lines[lines.len() - 2]), snapshot.join("model.safetensors"), "{out}");
    assert_eq!(PathBuf::from(lines[lines.len() - 1]), snapshot, "{out}");

    // Python downloads; commons finds every blob and fetches nothing.
    let (out, _) = ok(python_env(theirs.path())
        .args(["-c", "from huggingface_hub import snapshot_download\nprint(snapshot_download('alice/shared'))"])
        .output()
        .expect("python"));
    let python_snapshot = PathBuf::from(last_line(&out));
    let (out, err) = ok(with_hub(theirs.path(), &["download", "alice/shared"]));
    assert_eq!(PathBuf::from(last_line(&out)), python_snapshot);
    assert!(err.contains("0 fetched") && err.contains("3 from the cache"), "{err}");
    let original = FileDigest::of_file(&src.path().join("model.safetensors")).expect("digest");
    assert_eq!(FileDigest::of_file(&python_snapshot.join("model.safetensors")).expect("digest").sha256, original.sha256);
}
