"""What every check script here shares: `check`, which stops the script at the first failed
expectation (the Rust test then shows its output)."""

import sys


def check(cond, what):
    if not cond:
        print(f"CHECK FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")
