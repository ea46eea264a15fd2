"""Uploads and downloads through Xet with the default install of `huggingface_hub` (hf_xet
present, Xet not disabled), checking every file byte for byte.

Run with HF_ENDPOINT, HF_TOKEN and HF_HOME set, and HF_HUB_DISABLE_XET unset. Prints the sha256
of each uploaded large file as `XET_FILE <path> <sha256>`, and `ALL CHECKS PASSED` at the end.
"""

import hashlib
import os
import sys
import tempfile

import hf_xet  # noqa: F401  (the point of this test: the default install has it)
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download


def check(cond, what):
    if not cond:
        print(f"CHECK FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    check("HF_HUB_DISABLE_XET" not in os.environ, "Xet is not disabled")
    api = HfApi()
    user = api.whoami()["name"]
    repo = f"{user}/xet-upload"
    api.create_repo(repo)

    weights = os.urandom(3 * 1024 * 1024 + 12345)
    # Half of this file repeats the first: Xet deduplicates the chunks within one upload.
    half = os.urandom(2 * 1024 * 1024)
    doubled = half + half
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        os.makedirs(os.path.join(folder, "shards"))
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(weights)
        with open(os.path.join(folder, "shards", "doubled.bin"), "wb") as f:
            f.write(doubled)
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write("---\nlicense: mit\n---\n# uploaded through Xet\n")
        info = api.upload_folder(repo_id=repo, folder_path=folder, commit_message="weights through Xet")
        check(info.oid and len(info.oid) == 40, "upload_folder made a commit")

    files = {f.path: f for f in api.list_repo_tree(repo, recursive=True) if hasattr(f, "size")}
    for path, data in [("model.safetensors", weights), ("shards/doubled.bin", doubled)]:
        digest = hashlib.sha256(data).hexdigest()
        check(path in files and files[path].lfs is not None, f"{path} is an LFS file in the tree")
        check(files[path].lfs.sha256 == digest, f"{path}'s LFS oid is its sha256")
        check(files[path].size == len(data), f"{path}'s size")
        if hasattr(files[path], "xet_hash"):  # read by huggingface_hub >= 1.22
            check(files[path].xet_hash is not None and len(files[path].xet_hash) == 64, f"{path} has its xetHash in the tree")
        meta = get_hf_file_metadata(hf_hub_url(repo, path))
        check(meta.xet_file_data is not None, f"{path} is advertised for Xet download")
        local = hf_hub_download(repo, path)
        with open(local, "rb") as f:
            check(f.read() == data, f"{path} downloads byte for byte")
        print(f"XET_FILE {path} {digest}")
    check(get_hf_file_metadata(hf_hub_url(repo, "README.md")).xet_file_data is None, "a regular file is not a Xet file")
    readme = hf_hub_download(repo, "README.md")
    with open(readme) as f:
        check("uploaded through Xet" in f.read(), "the small file is there too")

    # Uploading the same bytes again costs no new xorb and makes a second commit.
    info = api.upload_file(repo_id=repo, path_or_fileobj=weights, path_in_repo="copy.safetensors")
    check(info.oid and len(info.oid) == 40, "a second upload of the same bytes commits")
    check(api.get_paths_info(repo, ["copy.safetensors"])[0].lfs.sha256 == hashlib.sha256(weights).hexdigest(), "the copy has the same oid")
    # A snapshot downloads through the tree's xetHash, with no HEAD per file.
    with tempfile.TemporaryDirectory() as tmp:
        folder = snapshot_download(repo, local_dir=tmp)
        for path, data in [("model.safetensors", weights), ("shards/doubled.bin", doubled)]:
            with open(os.path.join(folder, path), "rb") as f:
                check(f.read() == data, f"the snapshot's {path} is byte for byte")
    print("ALL CHECKS PASSED")


main()
