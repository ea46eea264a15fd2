"""A repository that must outlive garbage collection: `upload` creates `{user}/keep` with a 3 MB
file (seeded, so both modes know its bytes); `download` fetches it again past any cache and
checks it byte for byte. Prints `ALL CHECKS PASSED` at the end.
"""

import hashlib
import random
import sys

from huggingface_hub import HfApi, hf_hub_download

CONTENT = random.Random(7).randbytes(3_000_000)


def main():
    api = HfApi()
    repo = f"{api.whoami()['name']}/keep"
    if sys.argv[1] == "upload":
        api.create_repo(repo)
        api.upload_file(repo_id=repo, path_or_fileobj=CONTENT, path_in_repo="weights.bin")
    path = hf_hub_download(repo, "weights.bin", force_download=True)
    with open(path, "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if got != hashlib.sha256(CONTENT).hexdigest():
        print(f"CHECK FAILED: weights.bin came back as {got}", file=sys.stderr)
        sys.exit(1)
    print("ALL CHECKS PASSED")


main()
