//! Acceptance (issue 12, item 2): `datasets` 5.2.0 and `pandas` read datasets hosted on
//! Commons, as a new user would, with only `HF_ENDPOINT` and a token set.

mod support;

use support::{Hub, assert_python_passed, python_script, python_venv};

#[test]
fn datasets_5_2_loads_a_csv_and_a_parquet_repository_and_pandas_reads_hf_urls() {
    let python = python_venv("datasets", "5.2.0");
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let out =
        python_script(&python, "hf_datasets.py", &hub.url(), hf_home.path()).env("HF_TOKEN", &hub.token).output().expect("run python");
    assert_python_passed(&out, "datasets 5.2.0");
}
