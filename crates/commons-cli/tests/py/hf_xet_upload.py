"""Uploads and downloads through Xet with `huggingface_hub` as installed by default (hf_xet
present, Xet not disabled), checking every file byte for byte: a 12 MB and a 100 MB file through
the library, a file through the `hf` CLI, and the crossings with the LFS path (a file uploaded
with HF_HUB_DISABLE_XET=1 downloads through Xet; a file uploaded through Xet downloads with it).

Run with HF_ENDPOINT, HF_TOKEN and HF_HOME set, and HF_HUB_DISABLE_XET unset. Prints the sha256
of each file uploaded through Xet as `XET_FILE <path> <sha256>`, and `ALL CHECKS PASSED` at the
end.
"""

import hashlib
import os
import subprocess
import sys
import tempfile

import hf_xet  # noqa: F401  (the point of this test: the default install has it)
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download

from checks import check


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def without_xet(code, *args):
    """Runs `code` in a new interpreter with HF_HUB_DISABLE_XET=1 (read at import time)."""
    env = dict(os.environ, HF_HUB_DISABLE_XET="1")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    check(out.returncode == 0, f"without Xet: {out.stderr[-2000:]}")
    return out.stdout


def main():
    check("HF_HUB_DISABLE_XET" not in os.environ, "Xet is not disabled")
    api = HfApi()
    user = api.whoami()["name"]
    repo = f"{user}/xet-upload"
    api.create_repo(repo)

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        os.makedirs(os.path.join(folder, "shards"))
        files = {"model.safetensors": 12_000_000 + 12345, "shards/big.bin": 100_000_000}
        for path, size in files.items():
            with open(os.path.join(folder, path), "wb") as f:
                for _ in range(size // (1 << 20)):
                    f.write(os.urandom(1 << 20))
                f.write(os.urandom(size % (1 << 20)))
        # Half of this file repeats the first: Xet deduplicates the chunks within one upload.
        half = os.urandom(2 * 1024 * 1024)
        with open(os.path.join(folder, "shards", "doubled.bin"), "wb") as f:
            f.write(half + half)
        files["shards/doubled.bin"] = 4 * 1024 * 1024
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write("---\nlicense: mit\n---\n# uploaded through Xet\n")
        digests = {path: sha256_of(os.path.join(folder, path)) for path in files}
        info = api.upload_folder(repo_id=repo, folder_path=folder, commit_message="weights through Xet")
        check(info.oid and len(info.oid) == 40, "upload_folder made a commit")

        tree = {f.path: f for f in api.list_repo_tree(repo, recursive=True) if hasattr(f, "size")}
        for path, size in files.items():
            check(path in tree and tree[path].lfs is not None, f"{path} is an LFS file in the tree")
            check(tree[path].lfs.sha256 == digests[path], f"{path}'s LFS oid is its sha256")
            check(tree[path].size == size, f"{path}'s size")
            if hasattr(tree[path], "xet_hash"):  # read by huggingface_hub >= 1.22
                check(tree[path].xet_hash is not None and len(tree[path].xet_hash) == 64, f"{path} has its xetHash in the tree")
            meta = get_hf_file_metadata(hf_hub_url(repo, path))
            check(meta.xet_file_data is not None, f"{path} is advertised for Xet download")
            check(sha256_of(hf_hub_download(repo, path)) == digests[path], f"{path} downloads through Xet byte for byte")
            print(f"XET_FILE {path} {digests[path]}")
        check(get_hf_file_metadata(hf_hub_url(repo, "README.md")).xet_file_data is None, "a regular file is not a Xet file")
        with open(hf_hub_download(repo, "README.md")) as f:
            check("uploaded through Xet" in f.read(), "the small file is there too")

        # A file uploaded through Xet downloads with Xet disabled (plain /resolve).
        with tempfile.TemporaryDirectory() as plain:
            got = without_xet(
                "import sys, hashlib; from huggingface_hub import hf_hub_download\n"
                "p = hf_hub_download(sys.argv[1], sys.argv[2], local_dir=sys.argv[3])\n"
                "print(hashlib.sha256(open(p, 'rb').read()).hexdigest())",
                repo, "model.safetensors", plain,
            )
            check(got.strip() == digests["model.safetensors"], "a Xet upload downloads without Xet")

        # A file uploaded with Xet disabled (LFS) downloads through Xet.
        lfs_path = os.path.join(tmp, "lfs.bin")
        with open(lfs_path, "wb") as f:
            f.write(os.urandom(12_000_000))
        without_xet(
            "import sys; from huggingface_hub import HfApi\n"
            "HfApi().upload_file(repo_id=sys.argv[1], path_or_fileobj=sys.argv[2], path_in_repo='lfs.bin')",
            repo, lfs_path,
        )
        check(get_hf_file_metadata(hf_hub_url(repo, "lfs.bin")).xet_file_data is not None, "the LFS upload is advertised for Xet")
        check(sha256_of(hf_hub_download(repo, "lfs.bin")) == sha256_of(lfs_path), "an LFS upload downloads through Xet")

        # The `hf` CLI uploads and downloads through Xet too. (huggingface_hub 1.0.0's CLI
        # needs the `cli` extra, which its default install lacks.)
        hf = os.path.join(os.path.dirname(sys.executable), "hf")
        probe = subprocess.run([hf, "--help"], capture_output=True, text=True)
        if "ModuleNotFoundError" in probe.stderr:
            print("CLI_SKIPPED: the hf CLI is not usable in this install")
        else:
            cli_source = os.path.join(tmp, "cli.bin")
            with open(cli_source, "wb") as f:
                f.write(os.urandom(12_000_000))
            cli_digest = sha256_of(cli_source)
            up = subprocess.run([hf, "upload", repo, cli_source, "cli/model.safetensors"], capture_output=True, text=True)
            check(up.returncode == 0, f"hf upload: {up.stderr[-2000:]}")
            with tempfile.TemporaryDirectory() as cli:
                down = subprocess.run([hf, "download", repo, "cli/model.safetensors", "--local-dir", cli], capture_output=True, text=True)
                check(down.returncode == 0, f"hf download: {down.stderr[-2000:]}")
                check(sha256_of(os.path.join(cli, "cli", "model.safetensors")) == cli_digest, "hf download is byte for byte")
            print(f"XET_FILE cli/model.safetensors {cli_digest}")

        # Uploading the same bytes again costs no new xorb and makes a second commit.
        source = os.path.join(folder, "model.safetensors")
        info = api.upload_file(repo_id=repo, path_or_fileobj=source, path_in_repo="copy.safetensors")
        check(info.oid and len(info.oid) == 40, "a second upload of the same bytes commits")
        check(api.get_paths_info(repo, ["copy.safetensors"])[0].lfs.sha256 == digests["model.safetensors"], "the copy has the same oid")

    # A snapshot downloads through the tree's xetHash, with no HEAD per file.
    with tempfile.TemporaryDirectory() as tmp:
        folder = snapshot_download(repo, local_dir=tmp)
        for path in files:
            check(sha256_of(os.path.join(folder, path)) == digests[path], f"the snapshot's {path} is byte for byte")
    print("ALL CHECKS PASSED")


main()
