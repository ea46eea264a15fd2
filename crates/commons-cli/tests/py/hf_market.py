"""The market through the official `huggingface_hub` client: cards (cardData, tags, a README
whose YAML is broken refused), listings filtered by tags and sorted by downloads and likes,
likes (the HTTP call the Hub's pages make; `unlike` and `list_liked_repos` from the client),
download counts, and private repositories hidden from everyone else throughout.

Run with HF_ENDPOINT, HF_TOKEN (alice), BOB_TOKEN, HF_HOME and HF_HUB_DISABLE_XET=1 set.
Prints `ALL CHECKS PASSED` at the end.
"""

import os
import sys
import time

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import get_session

from checks import check

# The client's own HTTP session (requests before 1.0, httpx since).
http = get_session()

endpoint = os.environ["HF_ENDPOINT"]
alice = HfApi(token=os.environ["HF_TOKEN"])
bob = HfApi(token=os.environ["BOB_TOKEN"])
anonymous = HfApi(token=False)


def card(meta: str) -> bytes:
    return f"---\n{meta}---\n# A model\n\nTrained on MNIST.\n".encode()


def create(name, meta, private=False):
    repo = f"alice/{name}"
    alice.create_repo(repo, private=private)
    alice.upload_file(path_or_fileobj=card(meta), path_in_repo="README.md", repo_id=repo)
    alice.upload_file(path_or_fileobj=b'{"hidden": 64}', path_in_repo="config.json", repo_id=repo)
    return repo


mlp = create("mlp", "library_name: commons\npipeline_tag: image-classification\nlicense: mit\ndatasets: [commons/mnist]\ntags: [mnist, mlp]\n")
cnn = create("cnn", "library_name: commons\nlicense: apache-2.0\ntags: [mnist, cnn]\n")
secret = create("secret", "license: mit\ntags: [mnist]\n", private=True)

# Cards.
info = alice.model_info(mlp)
check(info.card_data is not None and info.card_data.license == "mit", f"cardData of {mlp}: {info.card_data}")
for tag in ["commons", "image-classification", "mnist", "mlp", "license:mit", "dataset:commons/mnist"]:
    check(tag in info.tags, f"{mlp} is tagged {tag}: {info.tags}")
check(info.pipeline_tag == "image-classification", f"pipeline_tag {info.pipeline_tag}")
check(info.library_name == "commons", f"library_name {info.library_name}")
try:
    alice.upload_file(path_or_fileobj=card("license: mit\ntags: [a, b\nother: 1\n"), path_in_repo="README.md", repo_id=cnn)
    check(False, "a README with broken YAML is refused")
except HfHubHTTPError as e:
    # huggingface_hub < 1.x commits it and the commit is refused.
    check(e.response.status_code == 400 and "line 4" in str(e), f"a README with broken YAML is a 400 naming its line: {e}")
except ValueError as e:
    # Later clients ask /api/validate-yaml first, as with the Hub, and refuse to commit.
    check("Invalid metadata in README.md" in str(e) and "line 4" in str(e), f"a README with broken YAML is refused naming its line: {e}")
check("license:apache-2.0" in alice.model_info(cnn).tags, "the refused README changed nothing")

# Listings: tags (AND), author, search; private repositories only for those who may read them.
def ids(api, **kw):
    return [m.id for m in api.list_models(**kw)]

check(set(ids(alice, filter="mnist", author="alice")) == {mlp, cnn, secret}, "alice lists her three MNIST models")
check(set(ids(bob, filter="mnist")) == {mlp, cnn}, "bob does not see alice's private model")
check(set(ids(anonymous, filter="mnist")) == {mlp, cnn}, "nor does an anonymous caller")
check(ids(alice, filter=["mnist", "license:mit"]) in ([mlp, secret], [secret, mlp]), "filters are ANDed")
check(ids(bob, filter=["mnist", "license:mit"]) == [mlp], "and still hide what bob may not read")
check(ids(bob, search="cn") == [cnn], "search finds a part of a name")
check(ids(bob, search="apache") == [cnn], "and words of cards (the license)")
check(set(ids(bob, search="trained mnist")) == {mlp, cnn}, "every word must match, in the card's text")
check(set(ids(alice, search="trained mnist")) == {mlp, cnn, secret}, "alice's search finds her private model too")
check(ids(bob, search="trained", filter="license:mit") == [mlp], "search and filters combine")
check(ids(bob, filter="no-such-tag") == [], "an unknown tag matches nothing")

# Tag facets, counted over what the caller may see.
def facets(token):
    by_type = http.get(f"{endpoint}/api/models-tags-by-type", headers={"authorization": f"Bearer {token}"}).json()
    return {(facet, t["id"]): t["count"] for facet, tags in by_type.items() for t in tags}

seen_by_bob = facets(os.environ["BOB_TOKEN"])
check(seen_by_bob[("other", "mnist")] == 2 and seen_by_bob[("license", "license:mit")] == 1, f"bob's facets: {seen_by_bob}")
check(seen_by_bob[("library", "commons")] == 2 and seen_by_bob[("pipeline_tag", "image-classification")] == 1, "library and task facets")
check(facets(os.environ["HF_TOKEN"])[("other", "mnist")] == 3, "alice's facets count her private model")

# Downloads: distinct clients per repository per day, GETs of files (not HEADs).
def downloads(repo, expected):
    for _ in range(50):
        n = alice.model_info(repo).downloads
        if n == expected:
            return n
        time.sleep(0.1)
    return n

hf_hub_download(cnn, "config.json", token=os.environ["BOB_TOKEN"], cache_dir=os.environ["HF_HOME"] + "/bob")
check(downloads(cnn, 1) == 1, "bob's download counts once")
hf_hub_download(cnn, "config.json", token=os.environ["BOB_TOKEN"], cache_dir=os.environ["HF_HOME"] + "/bob", force_download=True)
hf_hub_download(cnn, "README.md", token=os.environ["BOB_TOKEN"], cache_dir=os.environ["HF_HOME"] + "/bob")
check(downloads(cnn, 1) == 1, "bob downloading again the same day counts nothing more")
hf_hub_download(cnn, "config.json", token=False, cache_dir=os.environ["HF_HOME"] + "/anonymous")
check(downloads(cnn, 2) == 2, "an anonymous download counts, by address")
check(downloads(mlp, 0) == 0, "nobody downloaded the MLP")
check(ids(bob, author="alice", sort="downloads")[0] == cnn, "sort=downloads puts the downloaded model first")

# A search is sorted and paged in the search index, which learns counts as they change.
def searched(api, expected, **kw):
    for _ in range(50):
        found = ids(api, **kw)
        if found == expected:
            return found
        time.sleep(0.1)
    return found

check(searched(bob, [cnn, mlp], search="trained", sort="downloads") == [cnn, mlp], "a search sorts by downloads")
reverse = http.get(f"{endpoint}/api/models", params={"search": "trained", "sort": "downloads", "direction": "1"}).json()
check([m["id"] for m in reverse] == [mlp, cnn], "and the other way")
first = http.get(f"{endpoint}/api/models", params={"search": "trained", "sort": "downloads", "limit": 1})
check([m["id"] for m in first.json()] == [cnn] and "rel=\"next\"" in first.headers.get("link", ""), "a search is paged")
following = http.get(first.links["next"]["url"]).json()
check([m["id"] for m in following] == [mlp], f"and its next page follows the Link: {following}")
listed = {m.id: m for m in bob.list_models(author="alice")}
check(listed[cnn].downloads == 2 and listed[mlp].downloads == 0, "listings carry download counts")

# Likes.
def like(token, repo, method="POST"):
    return http.request(method, f"{endpoint}/api/models/{repo}/like", headers={"authorization": f"Bearer {token}"})

check(like(os.environ["BOB_TOKEN"], mlp).status_code == 200, "bob likes the MLP")
check(like(os.environ["BOB_TOKEN"], mlp).status_code == 200, "liking twice is harmless")
check(alice.model_info(mlp).likes == 1, "the MLP has one like")
check(ids(bob, author="alice", sort="likes")[0] == mlp, "sort=likes puts the liked model first")
check(ids(bob, author="alice", sort="trending_score")[0] == mlp, "a recent like makes the MLP trend")
check(ids(bob, search="trained", sort="likes") == [mlp, cnn], "a search sorts by likes at once")
check(ids(bob, search="mnist", sort="trending_score") == [mlp, cnn], "and by trending score")
info = bob.model_info(mlp, expand=["likes", "trendingScore", "downloads"])
check((info.likes, info.trending_score, info.downloads) == (1, 1, 0), f"expand answers what it names: {info}")
check(info.sha is None and info.tags is None and info.siblings is None, "and only that")
expanded = {m.id: m for m in bob.list_models(author="alice", expand=["cardData", "trendingScore", "siblings"])}
check(expanded[mlp].trending_score == 1 and expanded[cnn].trending_score == 0, "listings expand trendingScore")
check(expanded[cnn].card_data is not None and expanded[cnn].card_data.license == "apache-2.0", "and cardData")
check(any(s.rfilename == "config.json" for s in expanded[cnn].siblings), "and siblings")
check(expanded[cnn].likes is None, "and nothing else")
bad = http.get(f"{endpoint}/api/models", params={"expand": "everything"})
check(bad.status_code == 400 and "expand" in bad.json()["message"], "an unknown expand is a clear 400")
# `direction` left the client in 2.x; the Hub still takes it.
ascending = http.get(f"{endpoint}/api/models", params={"author": "alice", "sort": "likes", "direction": "1"}).json()
check([m["id"] for m in ascending][-1] == mlp, "direction=1 reverses it")
check(bob.list_liked_repos("bob").models == [mlp], "list_liked_repos shows bob's like")
check([u.username for u in alice.list_repo_likers(mlp)] == ["bob"], "list_repo_likers names bob")
check(like(os.environ["BOB_TOKEN"], secret).status_code == 404, "bob cannot like what he cannot see")
check(http.post(f"{endpoint}/api/models/{mlp}/like").status_code == 401, "an anonymous like is refused")
check(like(os.environ["HF_TOKEN"], secret).status_code == 200, "alice likes her private model")
check(alice.list_liked_repos("alice").models == [secret], "alice sees her own like")
check(bob.list_liked_repos("alice").models == [], "bob does not see alice's like of a private model")
bob.unlike(mlp)
check(alice.model_info(mlp).likes == 0, "unlike takes the like back")
check(ids(bob, search="trained", sort="likes") == [cnn, mlp], "and out of a search's order (ties go newest first)")
check(alice.model_info(mlp, expand=["trendingScore"]).trending_score == 0, "and its trending score")
check(bob.list_liked_repos("bob").models == [], "and it leaves bob's likes")
try:
    bob.unlike(secret)
    check(False, "unliking a repository bob cannot see fails")
except RepositoryNotFoundError:
    check(True, "unliking a repository bob cannot see is a RepositoryNotFoundError")

# Lineage, from what cards name; private repositories are left out for those who may not see them.
alice.create_repo("alice/digits", repo_type="dataset")
tuned = create("tuned", "base_model: alice/mlp\ndatasets: [alice/digits]\n")
create("tuned-secret", "base_model: alice/mlp\n", private=True)

def lineage(token, path):
    return http.get(f"{endpoint}/api/{path}/lineage", headers={"authorization": f"Bearer {token}"}).json()

def related(nodes):
    return sorted((n["id"], n["relation"], n["of"], n["depth"]) for n in nodes)

up = lineage(os.environ["BOB_TOKEN"], f"models/{tuned}")
check(related(up["ancestors"]) == [("alice/digits", "datasets", tuned, 1), (mlp, "base_model", tuned, 1)], f"ancestors: {up}")
down = lineage(os.environ["BOB_TOKEN"], f"models/{mlp}")
check(related(down["descendants"]) == [(tuned, "base_model", mlp, 1)], f"bob sees one descendant: {down}")
check(len(lineage(os.environ["HF_TOKEN"], f"models/{mlp}")["descendants"]) == 2, "alice also sees her private one")
data = lineage(os.environ["BOB_TOKEN"], "datasets/alice/digits")
check(related(data["descendants"]) == [(tuned, "datasets", "alice/digits", 1)], f"a dataset's descendants: {data}")
check(http.get(f"{endpoint}/api/models/alice/tuned-secret/lineage").status_code == 404, "a private repository's lineage is not found")

print("ALL CHECKS PASSED")
