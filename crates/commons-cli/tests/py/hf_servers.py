"""One file through one server of several: `upload REPO PATH SEED SIZE` creates REPO when missing
and commits SIZE seeded random bytes at PATH (printing `UPLOADING` first, so a test knows the
transfer has begun); `download REPO PATH SEED SIZE` fetches PATH past any cache and checks it
byte for byte. The client as installed by default: Xet transfers when the hub offers them.
Prints `ALL CHECKS PASSED` at the end.
"""

import hashlib
import random
import sys

from huggingface_hub import HfApi, hf_hub_download


def main():
    mode, repo, path, seed, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    content = random.Random(seed).randbytes(size)
    api = HfApi()
    if mode == "upload":
        api.create_repo(repo, exist_ok=True)
        print("UPLOADING", flush=True)
        info = api.upload_file(repo_id=repo, path_or_fileobj=content, path_in_repo=path)
        print(f"COMMIT {info.oid}")
    elif mode == "download":
        local = hf_hub_download(repo, path, force_download=True)
        with open(local, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != hashlib.sha256(content).hexdigest():
            print(f"CHECK FAILED: {path} came back as {got}", file=sys.stderr)
            sys.exit(1)
    else:
        sys.exit(f"unknown mode {mode}")
    print("ALL CHECKS PASSED", flush=True)


main()
