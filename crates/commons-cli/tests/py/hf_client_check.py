"""Drives the official `huggingface_hub` client against a Commons hub, as a user would.

Run with HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_DISABLE_XET=1 set. Exits non-zero with a
message on the first failed check; prints `ALL CHECKS PASSED` at the end.
"""

import hashlib
import os
import pathlib
import sys
import tempfile

import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RevisionNotFoundError
from huggingface_hub.errors import RepositoryNotFoundError as RepoNotFoundError

from checks import check


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expect_raises(exc, fn, what):
    try:
        fn()
    except LocalEntryNotFoundError as e:
        # The client's "could not reach the server" error: the hub must answer, not fail.
        check(False, f"{what} raised LocalEntryNotFoundError (server unreachable?): {e}")
    except exc:
        print(f"ok: {what} raises {exc.__name__}")
        return
    except Exception as e:  # noqa: BLE001
        check(False, f"{what} raised {type(e).__name__}: {e}, expected {exc.__name__}")
    check(False, f"{what} did not raise {exc.__name__}")


def main():
    tag = sys.argv[1]
    print(f"huggingface_hub {huggingface_hub.__version__} against {os.environ['HF_ENDPOINT']}")
    api = HfApi()
    user = api.whoami()["name"]
    check(bool(user), f"whoami names the token's user ({user})")

    small = b"hello commons\n"
    big = os.urandom(12 * 1024 * 1024)
    folder = {
        "a.txt": b"first file\n",
        "sub/b.json": b'{"k": 1}\n',
        "sub/c.safetensors": os.urandom(4096),
        "empty.txt": b"",
    }
    created = {}
    for repo_type in ["model", "dataset"]:
        repo_id = f"{user}/check-{repo_type}-{tag}"
        url = api.create_repo(repo_id, repo_type=repo_type)
        check(repo_id in str(url), f"create_repo {repo_type} returns its url ({url})")
        url2 = api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)
        check(str(url2) == str(url), "create_repo again with exist_ok returns the same url")

        api.upload_file(path_or_fileobj=small, path_in_repo="hello.txt", repo_id=repo_id, repo_type=repo_type)
        api.upload_file(path_or_fileobj=big, path_in_repo="weights/big.bin", repo_id=repo_id, repo_type=repo_type)
        with tempfile.TemporaryDirectory() as d:
            for rel, data in folder.items():
                p = pathlib.Path(d, rel)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            api.upload_folder(folder_path=d, path_in_repo="folder", repo_id=repo_id, repo_type=repo_type)

        path = hf_hub_download(repo_id, "hello.txt", repo_type=repo_type)
        check(sha256(pathlib.Path(path).read_bytes()) == sha256(small), "hf_hub_download small file, sha256 matches")
        path = hf_hub_download(repo_id, "weights/big.bin", repo_type=repo_type)
        check(sha256(pathlib.Path(path).read_bytes()) == sha256(big), "hf_hub_download 12 MB file, sha256 matches")

        snap = pathlib.Path(snapshot_download(repo_id, repo_type=repo_type))
        expected = {"hello.txt": small, "weights/big.bin": big, **{f"folder/{k}": v for k, v in folder.items()}}
        for rel, data in expected.items():
            got = (snap / rel).read_bytes()
            check(sha256(got) == sha256(data), f"snapshot_download has {rel} byte-exact")

        info = api.repo_info(repo_id, repo_type=repo_type, files_metadata=True)
        by_name = {s.rfilename: s for s in info.siblings}
        bigsib = by_name["weights/big.bin"]
        check(bigsib.lfs is not None and bigsib.lfs.sha256 == sha256(big), "repo_info files_metadata: lfs.sha256 of the big file")
        check(bigsib.size == len(big), "repo_info files_metadata: size of the big file")
        check(by_name["folder/sub/c.safetensors"].lfs is not None, ".safetensors goes through LFS by .gitattributes")
        check(by_name["hello.txt"].lfs is None, "a small text file is a regular file")

        files = set(api.list_repo_files(repo_id, repo_type=repo_type))
        check(files == {".gitattributes", *expected}, f"list_repo_files lists exactly the uploaded files ({sorted(files)})")

        refs = api.list_repo_refs(repo_id, repo_type=repo_type)
        mains = [b for b in refs.branches if b.name == "main"]
        check(len(mains) == 1 and mains[0].target_commit == info.sha, "list_repo_refs: main points at the repo sha")

        commits = api.list_repo_commits(repo_id, repo_type=repo_type)
        check(len(commits) == 4, f"list_repo_commits: initial + 3 uploads ({len(commits)})")
        check(commits[0].commit_id == info.sha, "list_repo_commits: newest first")

        api.delete_file("hello.txt", repo_id=repo_id, repo_type=repo_type)
        files = set(api.list_repo_files(repo_id, repo_type=repo_type))
        check("hello.txt" not in files and "weights/big.bin" in files, "delete_file removes only that file")
        old = hf_hub_download(repo_id, "hello.txt", repo_type=repo_type, revision=commits[0].commit_id, force_download=True)
        check(pathlib.Path(old).read_bytes() == small, "the deleted file is still readable at the old commit")

        expect_raises(EntryNotFoundError, lambda: hf_hub_download(repo_id, "nope.txt", repo_type=repo_type), "missing file")
        expect_raises(RevisionNotFoundError, lambda: hf_hub_download(repo_id, "hello.txt", repo_type=repo_type, revision="no-such-branch"), "missing revision")
        api.create_branch(repo_id, repo_type=repo_type, branch="feature/x", revision=commits[1].commit_id)
        api.create_tag(repo_id, repo_type=repo_type, tag="v1", revision=commits[0].commit_id)
        refs = api.list_repo_refs(repo_id, repo_type=repo_type)
        check({b.name for b in refs.branches} == {"main", "feature/x"}, "create_branch adds a branch")
        check([(t.name, t.target_commit) for t in refs.tags] == [("v1", commits[0].commit_id)], "create_tag adds a tag")
        files_v1 = set(api.list_repo_files(repo_id, repo_type=repo_type, revision="v1"))
        check("hello.txt" in files_v1, "files are listed at a tag")
        files_fx = set(api.list_repo_files(repo_id, repo_type=repo_type, revision="feature/x"))
        check("folder/a.txt" not in files_fx and "weights/big.bin" in files_fx, "a branch from an older commit has the older tree")
        created[repo_type] = repo_id

    expect_raises(RepoNotFoundError, lambda: api.repo_info(f"{user}/does-not-exist-{tag}"), "missing repo")
    expect_raises(RepoNotFoundError, lambda: hf_hub_download(f"{user}/does-not-exist-{tag}", "x.txt"), "download from a missing repo")

    models = [m.id for m in api.list_models(author=user)]
    check(created["model"] in models and created["dataset"] not in models, f"list_models(author=...) lists the model ({models})")
    datasets = [d.id for d in api.list_datasets(author=user)]
    check(created["dataset"] in datasets, "list_datasets(author=...) lists the dataset")
    print("ALL CHECKS PASSED")


if __name__ == "__main__":
    main()
