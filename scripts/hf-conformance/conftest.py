"""Commons' harness for huggingface_hub's own test suite.

The sdist of huggingface_hub ships its `tests/` modules without the `conftest.py` they import
fixtures from; this one, written for Commons, takes its place. It points the suite at a freshly
started Commons (`COMMONS_ENDPOINT`) whose users and tokens the runner made
(`COMMONS_USER`/`COMMONS_TOKEN`, `COMMONS_OTHER_USER`/`COMMONS_OTHER_TOKEN`, and the admin of
an organization private by default, `COMMONS_ENTERPRISE_{USER,ORG,TOKEN}`), provides the
fixtures the modules use (`api`, `repo_factory` and its `RepoFactory` type), skips only what
needs huggingface.co itself (and what the runner names in `COMMONS_SKIP`, each with its reason),
and records every test's outcome, one `nodeid<TAB>outcome` line each, in `COMMONS_RESULTS`.
"""

import os
from typing import Callable, Optional

import pytest

from . import testing_constants

ENDPOINT = os.environ["COMMONS_ENDPOINT"].rstrip("/")

# The constants the modules import by name: set before any of them is imported.
testing_constants.ENDPOINT_STAGING = ENDPOINT
testing_constants.USER = os.environ["COMMONS_USER"]
testing_constants.FULL_NAME = os.environ["COMMONS_USER"]
testing_constants.TOKEN = os.environ["COMMONS_TOKEN"]
testing_constants.OTHER_USER = os.environ["COMMONS_OTHER_USER"]
testing_constants.OTHER_TOKEN = os.environ["COMMONS_OTHER_TOKEN"]
# The admin of an organization whose repositories are private by default (the Hub's Enterprise
# setting), which the runner made.
testing_constants.ENTERPRISE_USER = os.environ["COMMONS_ENTERPRISE_USER"]
testing_constants.ENTERPRISE_ORG = os.environ["COMMONS_ENTERPRISE_ORG"]
testing_constants.ENTERPRISE_TOKEN = os.environ["COMMONS_ENTERPRISE_TOKEN"]

from huggingface_hub import HfApi  # noqa: E402 - after the constants, as the modules import it
from huggingface_hub.hf_api import RepoUrl  # noqa: E402

from .testing_utils import repo_name  # noqa: E402

# What the suite's markers mean here: these need services only huggingface.co runs.
NEEDS_PRODUCTION = {
    "production": "runs against huggingface.co",
    "vcr": "replays recordings of huggingface.co",
    "xet": "Xet-only test (left to the Xet issue's own matrix)",
    "git_lfs": "needs git-lfs pushing to the Hub over git",
}


def _named_skips() -> dict:
    """`COMMONS_SKIP`: a file of `nodeid<TAB>reason` lines the runner keeps in the repository."""
    path = os.environ.get("COMMONS_SKIP")
    skips = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    nodeid, _, reason = line.partition("\t")
                    skips[nodeid] = reason or "skipped by the harness"
    return skips


def pytest_configure(config):
    for name in ["api", "transfer", "inference", "no_xet", "deprecated", *NEEDS_PRODUCTION]:
        config.addinivalue_line("markers", f"{name}: huggingface_hub's marker")


def pytest_collection_modifyitems(config, items):
    named = _named_skips()
    for item in items:
        for marker, reason in NEEDS_PRODUCTION.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
                break
        else:
            if item.nodeid in named:
                item.add_marker(pytest.mark.skip(reason=named[item.nodeid]))


_outcome = {}


def pytest_runtest_logreport(report):
    # One outcome per test: an error in its setup or teardown is the test's error.
    if report.when == "call":
        _outcome[report.nodeid] = report.outcome
    elif report.failed:
        _outcome[report.nodeid] = "error"
    elif report.when == "setup" and report.skipped:
        _outcome[report.nodeid] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("COMMONS_RESULTS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            for nodeid in sorted(_outcome):
                f.write(f"{nodeid}\t{_outcome[nodeid]}\n")


@pytest.fixture(scope="session")
def api() -> HfApi:
    """The test user's client, against Commons (shared: class-scoped fixtures use it too)."""
    return HfApi(endpoint=ENDPOINT, token=testing_constants.TOKEN)


RepoFactory = Callable[..., RepoUrl]


@pytest.fixture
def repo_factory():
    """Creates repositories for one test and deletes them after it: `repo_factory(repo_type,
    repo_id=, private=, visibility=, token=, **create_repo_kwargs)`. Without a `repo_id` the
    name is fresh; without a namespace it is the token's user's."""
    made = []

    def make(repo_type: Optional[str] = None, *, repo_id: Optional[str] = None, token: Optional[str] = None, **kwargs) -> RepoUrl:
        token = token or testing_constants.TOKEN
        client = HfApi(endpoint=ENDPOINT, token=token)
        if kwargs.pop("visibility", None) == "private":
            kwargs["private"] = True
        url = client.create_repo(repo_id or repo_name(), repo_type=repo_type, **kwargs)
        made.append((client, url.repo_id, url.repo_type))
        return url

    yield make
    for client, repo_id, repo_type in made:
        try:
            client.delete_repo(repo_id, repo_type=repo_type, missing_ok=True)
        except Exception:  # noqa: BLE001 - a test may have moved or deleted it already
            pass


@pytest.fixture
def new_repo_id():
    """A fresh `{USER}/name` no repository has yet, deleted after the test if one was made."""
    repo_id = f"{testing_constants.USER}/{repo_name()}"
    yield repo_id
    try:
        HfApi(endpoint=ENDPOINT, token=testing_constants.TOKEN).delete_repo(repo_id, missing_ok=True)
    except Exception:  # noqa: BLE001 - nothing to clean up
        pass


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Each test starts with the client's process-wide OAuth refresh state cleared, as in a new
    process: a token one test cached must not answer another's `get_token()`."""
    from huggingface_hub.utils import _auth

    _auth._OAUTH_REFRESH_CACHE = None
    _auth._OAUTH_REFRESH_WARNED = False
    yield
    _auth._OAUTH_REFRESH_CACHE = None
