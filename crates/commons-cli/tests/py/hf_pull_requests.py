"""Pull requests and discussions as huggingface_hub users make them: a stranger proposes a change
to alice's model, alice reviews and merges it, a conflicting pull request is refused with its
paths, and nobody but alice moves `main`.

OWNER_TOKEN is alice's write token; STRANGER_TOKEN bob's; THIRD_TOKEN carol's; READ_TOKEN a
read-only token of carol's."""

import os
import tempfile

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

try:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
except ImportError:  # 0.x
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError

endpoint = os.environ["HF_ENDPOINT"]
alice = HfApi(endpoint=endpoint, token=os.environ["OWNER_TOKEN"])
bob = HfApi(endpoint=endpoint, token=os.environ["STRANGER_TOKEN"])
carol = HfApi(endpoint=endpoint, token=os.environ["THIRD_TOKEN"])
reader = HfApi(endpoint=endpoint, token=os.environ["READ_TOKEN"])
repo = "alice/shared-model"
failures = []


def check(name, condition, detail=""):
    if condition:
        print(f"ok: {name}")
    else:
        failures.append(f"{name} {detail}")


def refused(name, status, call):
    try:
        call()
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else None
        check(name, code == status, f"answered {code}, not {status}: {e}")
        return e
    except Exception as e:  # noqa: BLE001 - any other exception is the failure reported
        failures.append(f"{name}: expected HTTP {status}, got {type(e).__name__}: {e}")
        return None
    failures.append(f"{name}: expected HTTP {status}, nothing was raised")
    return None


def download(revision, filename="config.json"):
    cache = tempfile.mkdtemp()
    path = hf_hub_download(repo, filename, revision=revision, endpoint=endpoint, cache_dir=cache, token=os.environ["STRANGER_TOKEN"])
    with open(path, "rb") as f:
        return f.read()


alice.create_repo(repo)
alice.create_commit(
    repo,
    operations=[
        CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# Shared model\n"),
        CommitOperationAdd("config.json", b'{"hidden": 64}\n'),
        CommitOperationAdd("notes.txt", b"first line\n"),
    ],
    commit_message="First version",
)

# A stranger proposes a change: a pull request with a commit, on a branch of its own.
info = bob.create_commit(
    repo,
    operations=[CommitOperationAdd("config.json", b'{"hidden": 128}\n'), CommitOperationAdd("weights.bin", os.urandom(3000))],
    commit_message="Wider hidden layer",
    commit_description="Doubles the hidden layer; trained weights attached.",
    create_pr=True,
)
check("create_pr opens pull request #1", info.pr_num == 1 and info.pr_revision == "refs/pr/1", repr(info))
check("its URL is the discussion's", info.pr_url == f"{endpoint}/{repo}/discussions/1", info.pr_url)
check("the pull request's branch holds the change", download("refs/pr/1") == b'{"hidden": 128}\n')
check("main does not", download("main") == b'{"hidden": 64}\n')

# More commits go to the same pull request.
bob.upload_file(path_or_fileobj=b"first line\nsecond line\n", path_in_repo="notes.txt", repo_id=repo, revision="refs/pr/1")
check("a second commit lands on refs/pr/1", download("refs/pr/1", "notes.txt") == b"first line\nsecond line\n")

# The stranger cannot move main, nor merge, nor make branches.
refused("a stranger writing main", 403, lambda: bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo))
refused("a stranger merging", 403, lambda: bob.merge_pull_request(repo, 1))
refused("a stranger creating a branch", 403, lambda: bob.create_branch(repo, branch="mine"))
refused("a read-only token opening a discussion", 403, lambda: reader.create_discussion(repo, title="Read only"))

# A second, conflicting pull request (same file, another value).
second = bob.create_commit(
    repo, operations=[CommitOperationAdd("config.json", b'{"hidden": 32}\n')], commit_message="Narrower", create_pr=True
)
check("a second pull request is #2", second.pr_num == 2, repr(second))

# A discussion, and the listing with its filters.
question = carol.create_discussion(repo, title="Which data was this trained on?", description="Asking for the card.")
check("a discussion is #3 and not a pull request", question.num == 3 and not question.is_pull_request)
nums = [d.num for d in alice.get_repo_discussions(repo)]
check("discussions are listed newest first", nums == [3, 2, 1], nums)
prs = [d.num for d in alice.get_repo_discussions(repo, discussion_type="pull_request")]
check("the pull request filter", prs == [2, 1], prs)
by_carol = [d.num for d in alice.get_repo_discussions(repo, author="carol")]
check("the author filter", by_carol == [3], by_carol)
refs = alice.list_repo_refs(repo, include_pull_requests=True)
check("refs list pull requests", sorted(r.ref for r in refs.pull_requests) == ["refs/pr/1", "refs/pr/2"], refs)
check("branches do not", [b.name for b in refs.branches] == ["main"], refs.branches)

# Review: alice comments, bob edits his own comment, carol may not rename bob's pull request.
comment = alice.comment_discussion(repo, 1, "Thanks! Could you also update the card?")
reply = bob.comment_discussion(repo, 1, "Done in a sec")
edited = bob.edit_discussion_comment(repo, 1, reply.id, "Will do.")
check("an edited comment says so", edited.edited and edited.content == "Will do.", repr(edited))
refused("another user's comment cannot be edited", 403, lambda: carol.edit_discussion_comment(repo, 1, comment.id, "hijacked"))
refused("a third user renaming the pull request", 403, lambda: carol.rename_discussion(repo, 1, "Hijacked"))
details = alice.get_discussion_details(repo, 1)
kinds = [e.type for e in details.events]
check("events: description, two commits, two comments", kinds == ["comment", "commit", "commit", "comment", "comment"], kinds)
check("the diff names the changed files", details.diff is not None and "config.json" in details.diff and "notes.txt" in details.diff, details.diff)
check("the diff shows the changed line", '+{"hidden": 128}' in (details.diff or ""), details.diff)
check("the target is main", details.target_branch == "refs/heads/main", details.target_branch)
check("no conflicts yet", details.conflicting_files == [], details.conflicting_files)

# alice merges #1.
alice.merge_pull_request(repo, 1, comment="Merged, thanks")
merged = alice.get_discussion_details(repo, 1)
check("the pull request is merged", merged.status == "merged" and merged.merge_commit_oid is not None, repr(merged))
check("main now holds the change", download("main") == b'{"hidden": 128}\n')
check("and the weights", len(download("main", "weights.bin")) == 3000)
refused("a merged pull request takes no commits", 400, lambda: bob.upload_file(path_or_fileobj=b"y", path_in_repo="y.txt", repo_id=repo, revision="refs/pr/1"))

# #2 changed config.json too: merging it is refused, naming the path.
conflicting = alice.get_discussion_details(repo, 2)
check("#2 reports its conflict", conflicting.conflicting_files == ["config.json"], conflicting.conflicting_files)
error = refused("merging a conflicting pull request", 409, lambda: alice.merge_pull_request(repo, 2))
if error is not None:
    body = error.response.json()
    check("the refusal names the paths", body.get("conflictingFiles") == ["config.json"] and "config.json" in body.get("message", ""), body)
check("main is unchanged by the refusal", download("main") == b'{"hidden": 128}\n')

# bob closes #2; alice hides a comment; carol's discussion gets renamed by alice (a writer).
closed = bob.change_discussion_status(repo, 2, "closed", comment="Superseded by #1")
check("the author closes their pull request", closed.new_status == "closed")
hidden = alice.hide_discussion_comment(repo, 1, reply.id)
check("a writer hides a comment", hidden.hidden, repr(hidden))
renamed = alice.rename_discussion(repo, 3, "Training data of this model")
check("a writer renames a discussion", renamed.old_title == "Which data was this trained on?" and renamed.new_title == "Training data of this model")
open_now = [d.num for d in alice.get_repo_discussions(repo, discussion_status="open")]
check("the status filter", open_now == [3], open_now)

# A private repository's discussions are as invisible as the repository.
alice.create_repo("alice/private-model", private=True)
alice.create_discussion("alice/private-model", title="Internal notes")
try:
    list(bob.get_repo_discussions("alice/private-model"))
    failures.append("a private repository's discussions were listed to a stranger")
except RepositoryNotFoundError:
    print("ok: a private repository's discussions are not found")

if failures:
    print("FAILURES:")
    for f in failures:
        print(" -", f)
    raise SystemExit(1)
print("ALL CHECKS PASSED")
