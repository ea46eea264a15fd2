"""Uploads one file through Xet (default install) to HF_REPO and checks it downloads back.

Run with HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_REPO and UPLOAD_FILE set (Xet not disabled). Prints
`ALL CHECKS PASSED` at the end.
"""

import hashlib
import os
import sys

from huggingface_hub import HfApi, hf_hub_download

from checks import check


def main():
    api = HfApi()
    repo = os.environ["HF_REPO"]
    path = os.environ["UPLOAD_FILE"]
    with open(path, "rb") as f:
        data = f.read()
    api.create_repo(repo, exist_ok=True)
    info = api.upload_file(repo_id=repo, path_or_fileobj=path, path_in_repo="weights.bin")
    check(info.oid and len(info.oid) == 40, "upload_file made a commit")
    local = hf_hub_download(repo, "weights.bin")
    with open(local, "rb") as f:
        check(hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(data).hexdigest(), "it downloads byte for byte")
    print("ALL CHECKS PASSED")


main()
