//! huggingface_hub's own test suite, pointed at a fresh Commons: the client's maintainers' idea
//! of what the Hub does, run as a new user would run it.
//!
//! The sdist of huggingface_hub 2.4.0 (from PyPI) holds the test modules but not the
//! `conftest.py` they import fixtures from; `scripts/hf-conformance/conftest.py`, written for
//! Commons, takes its place. Every test's outcome is written to
//! `target/hf-conformance/results.tsv`; the tests listed in `scripts/hf-conformance/passing.txt`
//! passed before and must still pass. `skipped.tsv` names, with a reason, the tests that need
//! huggingface.co itself although the suite does not mark them so.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Hub, python_venv_with, workspace_root};

const VERSION: &str = "2.4.0";

/// The modules the bar is set on (issue 14), as the sdist names them.
const MODULES: &[&str] = &[
    "test_hf_api.py",
    "test_file_download.py",
    "test_snapshot_download.py",
    "test_commit_api.py",
    "test_hf_file_system.py",
    "test_repocard.py",
    "test_utils_cache.py",
    "test_lfs.py",
    "test_auth.py",
    "test_tree_cache.py",
    "test_hub_mixin.py",
    "test_cli_discussions.py",
];

/// The sdist's `tests/` folder with the harness's `conftest.py` in it, fetched once.
fn suite(python: &Path) -> PathBuf {
    let dir = workspace_root().join("target").join("py").join(format!("hf-sdist-{VERSION}"));
    let root = dir.join(format!("huggingface_hub-{VERSION}"));
    if !root.join("tests").join("test_hf_api.py").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(python)
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check"])
            .arg(format!("huggingface_hub=={VERSION}"))
            .arg("-d")
            .arg(&dir)
            .output()
            .expect("pip");
        assert!(out.status.success(), "pip download failed: {}", String::from_utf8_lossy(&out.stderr));
        let archive = dir.join(format!("huggingface_hub-{VERSION}.tar.gz"));
        let status = Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&dir).status().expect("tar");
        assert!(status.success(), "unpacking {} failed", archive.display());
    }
    let harness = workspace_root().join("scripts").join("hf-conformance");
    std::fs::copy(harness.join("conftest.py"), root.join("tests").join("conftest.py")).unwrap();
    std::fs::write(root.join("tests").join("__init__.py"), b"").unwrap();
    root
}

/// `nodeid<TAB>value` lines of `path`, without comments.
fn table(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (id, value) = l.split_once('\t').unwrap_or((l, ""));
            (id.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn huggingface_hubs_own_tests_that_passed_before_still_pass() {
    let python = python_venv_with(&[
        ("huggingface_hub", VERSION),
        ("pytest", "9.2.0"),
        ("pytest-mock", "3.17.0"),
        ("Jinja2", "3.1.6"),
        ("jedi", "0.20.1"),
    ]);
    let root = suite(&python);
    let hub = Hub::start();
    let token = hub.add_user("hubci");
    let other_token = hub.add_user("dvuser");
    // The organizations the suite expects: one the user belongs to (read back by `whoami`), and
    // an "Enterprise" one whose repositories start private, with its own admin.
    hub.block_on(hub.state.db.create_org("valid_org_hub", "Dummy Hub Org", "hubci")).unwrap();
    let (enterprise_user, enterprise_org) = ("EnterpriseAdmin", "EnterpriseOrgPrivate");
    let enterprise_token = hub.add_user(enterprise_user);
    let org = hub.block_on(hub.state.db.create_org(enterprise_org, "Enterprise Org", enterprise_user)).unwrap();
    hub.block_on(hub.state.db.set_org_settings(org.id, None, Some(true))).unwrap();
    let out_dir = workspace_root().join("target").join("hf-conformance");
    std::fs::create_dir_all(&out_dir).unwrap();
    let results = out_dir.join("results.tsv");
    let _ = std::fs::remove_file(&results);
    let harness = workspace_root().join("scripts").join("hf-conformance");
    let hf_home = tempfile::tempdir().unwrap();
    let output = Command::new(&python)
        .args(["-m", "pytest", "-c"])
        .arg(harness.join("pytest.ini"))
        .arg("--rootdir")
        .arg(&root)
        .args(MODULES.iter().map(|m| format!("tests/{m}")))
        .current_dir(&root)
        .env("COMMONS_ENDPOINT", hub.url())
        .env("COMMONS_USER", "hubci")
        .env("COMMONS_TOKEN", &token)
        .env("COMMONS_OTHER_USER", "dvuser")
        .env("COMMONS_OTHER_TOKEN", &other_token)
        .env("COMMONS_ENTERPRISE_USER", enterprise_user)
        .env("COMMONS_ENTERPRISE_ORG", enterprise_org)
        .env("COMMONS_ENTERPRISE_TOKEN", &enterprise_token)
        .env("COMMONS_RESULTS", &results)
        .env("COMMONS_SKIP", harness.join("skipped.tsv"))
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HOME", hf_home.path())
        .env("HF_TOKEN", "")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HUGGINGFACE_CO_STAGING")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    std::fs::write(out_dir.join("pytest.log"), &output.stdout).unwrap();
    let outcomes = table(&results);
    assert!(!outcomes.is_empty(), "pytest recorded no outcome\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let count = |what: &str| outcomes.values().filter(|o| *o == what).count();
    let summary = format!(
        "huggingface_hub {VERSION}'s tests against Commons: {} passed, {} failed, {} errors, {} skipped",
        count("passed"),
        count("failed"),
        count("error"),
        count("skipped")
    );
    std::fs::write(out_dir.join("summary.txt"), format!("{summary}\n")).unwrap();
    println!("{summary}");

    let baseline = table(&harness.join("passing.txt"));
    let regressions: Vec<String> = baseline
        .keys()
        .filter(|id| outcomes.get(*id).map(String::as_str) != Some("passed"))
        .map(|id| format!("{id}: {}", outcomes.get(id).map(String::as_str).unwrap_or("did not run")))
        .collect();
    assert!(
        regressions.is_empty(),
        "{} test(s) that passed before do not now (full log: target/hf-conformance/pytest.log):\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
