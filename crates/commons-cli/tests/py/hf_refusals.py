"""The hub's refusals, as the official client sees them: each must raise the exception a user of
huggingface_hub expects, never a connection error or a silent fall-back to a cached file.

Run against a hub started with --max-commit-bytes 1048576 --max-file-bytes 5000000; OWNER_TOKEN
is alice's write token, OTHER_TOKEN another user's."""

import os
import sys
import tempfile

from huggingface_hub import HfApi, hf_hub_download

try:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
except ImportError:  # 0.x
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError

endpoint = os.environ["HF_ENDPOINT"]
owner = HfApi(endpoint=endpoint, token=os.environ["OWNER_TOKEN"])
other = HfApi(endpoint=endpoint, token=os.environ["OTHER_TOKEN"])
failures = []


def expect(name, exception, call, check=lambda e: True):
    try:
        call()
    except exception as e:
        if check(e):
            print(f"ok: {name}: {type(e).__name__}")
            return
        failures.append(f"{name}: {type(e).__name__} but {e!r}")
        return
    except Exception as e:  # noqa: BLE001 - any other exception is the failure reported
        failures.append(f"{name}: expected {exception.__name__}, got {type(e).__name__}: {e}")
        return
    failures.append(f"{name}: expected {exception.__name__}, nothing was raised")


owner.create_repo("alice/private-things", private=True)
owner.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id="alice/private-things")

# Another user's token: the repository does not exist for them, on the API and on downloads.
expect("model_info of another's private repo", RepositoryNotFoundError, lambda: other.model_info("alice/private-things"))
cache = tempfile.mkdtemp()
expect(
    "hf_hub_download of another's private file",
    RepositoryNotFoundError,
    lambda: hf_hub_download("alice/private-things", "s.txt", token=os.environ["OTHER_TOKEN"], endpoint=endpoint, cache_dir=cache),
)


def status(code):
    return lambda e: getattr(e, "response", None) is not None and e.response.status_code == code and "limit" in str(e)


# Over the hub's limits: an HTTP error carrying the hub's message.
expect(
    "a commit over the commit size limit",
    HfHubHTTPError,
    lambda: owner.upload_file(path_or_fileobj=b"x" * (2 << 20), path_in_repo="big.txt", repo_id="alice/private-things"),
    status(413),
)
expect(
    "a file over the file size limit",
    HfHubHTTPError,
    lambda: owner.upload_file(path_or_fileobj=b"\0" * 6_000_000, path_in_repo="huge.bin", repo_id="alice/private-things"),
    status(413),
)
files = owner.list_repo_files("alice/private-things")
if sorted(files) != [".gitattributes", "s.txt"]:
    failures.append(f"refused uploads changed the repository: {files}")

if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("ALL CHECKS PASSED")
