#!/usr/bin/env bash
# A private S3-compatible server for the tests: `s3s-fs` (the S3 API over a directory, from
# crates.io, installed into target/tools on first use).
#
#   scripts/s3.sh install   installs it when missing and prints the binary's path
#   scripts/s3.sh start     starts it on 127.0.0.1:${COMMONS_TEST_S3_PORT:-30440} (or the next
#                           free port of the ten after it) over an empty
#                           target/s3/root with bucket `commons`, and prints the variables a
#                           `commons` process and the test support read (AWS_*, COMMONS_TEST_S3*)
#                           as `export` lines for `eval`
#   scripts/s3.sh stop      stops it
#
# The test support starts servers of its own with the same binary for the tests of S3 itself;
# this one is shared by the suites that run a second time on PostgreSQL + S3, every test hub
# under a prefix of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

version="0.14.1" # the newest whose minimum Rust version the workspace's toolchain meets
tools="$PWD/target/tools"
binary="$tools/bin/s3s-fs"
dir="$PWD/target/s3"
# Below the kernel's ephemeral range (32768–60999 by default): a port there can be the local end
# of any test's outgoing connection at the moment the server starts, which made the start fail.
port="${COMMONS_TEST_S3_PORT:-30440}"
access_key="commons-test"
secret_key="commons-test-secret"

install() {
  if [ ! -x "$binary" ]; then
    # A target directory of its own, so the install never waits on the workspace's build lock.
    build="$(mktemp -d)"
    cargo install --locked --quiet --features binary "s3s-fs@$version" --root "$tools" --target-dir "$build" >&2
    rm -rf "$build"
  fi
}

case "${1:-}" in
  install)
    install
    echo "$binary"
    ;;
  start)
    install
    "$0" stop
    rm -rf "$dir/root"
    mkdir -p "$dir/root/commons"
    # A port someone else holds makes s3s-fs exit at once: the next one is tried.
    for try_port in $(seq "$port" $((port + 10))); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$try_port") 2>/dev/null; then
        continue # another server listens there
      fi
      nohup "$binary" --host 127.0.0.1 --port "$try_port" --access-key "$access_key" --secret-key "$secret_key" "$dir/root" \
        >"$dir/server.log" 2>&1 &
      pid=$!
      echo "$pid" >"$dir/pid"
      for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$try_port") 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
          cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$try_port AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key
export COMMONS_TEST_S3=s3://commons COMMONS_TEST_S3_ROOT=$dir/root/commons
EOF
          exit 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill "$pid" 2>/dev/null || true
      echo "s3s-fs did not listen on port $try_port:" >&2
      cat "$dir/server.log" >&2
    done
    echo "s3s-fs did not listen on any port from $port" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/pid" ]; then
      kill "$(cat "$dir/pid")" 2>/dev/null || true
      rm -f "$dir/pid"
    fi
    ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
