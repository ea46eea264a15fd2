"""`datasets` and `pandas` read datasets hosted on Commons as a new user would: a CSV repo
with a train and a test file (splits from the file names), a Parquet repo loaded whole and
streamed, and `pandas.read_parquet("hf://datasets/…")` through huggingface_hub's file system.

Run with HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_DISABLE_XET=1 set. Prints `ALL CHECKS PASSED`.
"""

import io
import json
import os
import sys
import urllib.parse
import urllib.request

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfApi

from checks import check


api = HfApi()
print("datasets", datasets.__version__, "pandas", pd.__version__, "pyarrow", pa.__version__)

# A CSV repository: train.csv and test.csv at its root are the train and test splits.
csv_repo = "alice/digits-csv"
api.create_repo(csv_repo, repo_type="dataset")
train_csv = "pixels,label\n" + "".join(f"{i} {i + 1} {i + 2},{i % 10}\n" for i in range(100))
test_csv = "pixels,label\n" + "".join(f"{i} {i} {i},{i % 10}\n" for i in range(20))
api.upload_file(path_or_fileobj=train_csv.encode(), path_in_repo="train.csv", repo_id=csv_repo, repo_type="dataset")
api.upload_file(path_or_fileobj=test_csv.encode(), path_in_repo="test.csv", repo_id=csv_repo, repo_type="dataset")
loaded = datasets.load_dataset(csv_repo)
check(set(loaded.keys()) == {"train", "test"}, f"the splits come from the file names: {list(loaded.keys())}")
check(loaded["train"].num_rows == 100 and loaded["test"].num_rows == 20, "every row of each split")
check(loaded["train"][7] == {"pixels": "7 8 9", "label": 7}, f"a row reads back: {loaded['train'][7]}")

# Its Parquet export, as the Hub's converter makes one: the hub's `/parquet` routes list it,
# pandas reads a file over HTTP, `datasets` loads the branch, and it is listed among the refs.
endpoint = os.environ["HF_ENDPOINT"]
auth = {"Authorization": f"Bearer {os.environ['HF_TOKEN']}"}


def get(url, **params):
    """GET `url` with the token (redirects followed): the body's bytes."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth)) as response:
        return response.read()


listing = json.loads(get(f"{endpoint}/api/datasets/{csv_repo}/parquet"))
check(sorted(listing["default"]) == ["test", "train"], f"the export has both splits: {listing}")
check(listing["default"]["train"] == [f"{endpoint}/api/datasets/{csv_repo}/parquet/default/train/0.parquet"], "one file per split")
check(json.loads(get(f"{endpoint}/api/datasets/{csv_repo}/parquet/default/test")) == listing["default"]["test"], "by split")
exported = pd.read_parquet(io.BytesIO(get(listing["default"]["train"][0])))
check(exported.shape == (100, 2) and exported["pixels"][7] == "7 8 9" and exported["label"][7] == 7, "pandas reads the export")
converted = datasets.load_dataset(csv_repo, revision="refs/convert/parquet")
check(converted["test"].num_rows == 20 and converted["train"][7] == {"pixels": "7 8 9", "label": 7}, "datasets loads the export")
check(str(converted["train"].features["label"].dtype) == "int64", "with the columns' types")
refs = api.list_repo_refs(csv_repo, repo_type="dataset")
check([c.ref for c in refs.converts] == ["refs/convert/parquet"] and all(b.name != "refs/convert/parquet" for b in refs.branches), "refs list it as a convert")
try:
    api.create_branch(csv_repo, repo_type="dataset", branch="refs/convert/parquet")
    check(False, "a user cannot write the export's branch")
except Exception as e:  # noqa: BLE001 - any refusal will do; what matters is that nothing changed
    check("refs/" in str(e), f"a user cannot write the export's branch: {e}")

# A Parquet repository in the layout the Hub's own converter writes.
parquet_repo = "alice/digits-parquet"
api.create_repo(parquet_repo, repo_type="dataset")
table = pa.table({"id": list(range(5000)), "text": [f"row {i}" for i in range(5000)], "label": [i % 10 for i in range(5000)]})
buffer = io.BytesIO()
pq.write_table(table, buffer, row_group_size=1000)
path = "data/train-00000-of-00001.parquet"
api.upload_file(path_or_fileobj=buffer.getvalue(), path_in_repo=path, repo_id=parquet_repo, repo_type="dataset")
train = datasets.load_dataset(parquet_repo, split="train")
check(train.num_rows == 5000 and train[4321] == {"id": 4321, "text": "row 4321", "label": 1}, "a Parquet split loads whole")
streamed = datasets.load_dataset(parquet_repo, split="train", streaming=True)
rows = list(streamed)
check(len(rows) == 5000 and rows[4999] == {"id": 4999, "text": "row 4999", "label": 9}, "and streams row by row")
frame = pd.read_parquet(f"hf://datasets/{parquet_repo}/{path}")
check(frame.shape == (5000, 3) and frame["text"][123] == "row 123", "pandas reads it through hf://")
# A Parquet split is its own export: the same bytes, stored once.
viewer = json.loads(get(f"{endpoint}/api/datasets-server/parquet", dataset=parquet_repo))
check([(f["config"], f["split"], f["filename"]) for f in viewer["parquet_files"]] == [("default", "train", "0000.parquet")], f"{viewer}")
original = api.get_paths_info(parquet_repo, [path], repo_type="dataset")[0].lfs.sha256
export = api.get_paths_info(parquet_repo, ["default/train/0000.parquet"], repo_type="dataset", revision="refs/convert/parquet")[0]
check(export.lfs.sha256 == original and viewer["parquet_files"][0]["size"] == len(buffer.getvalue()), "the export is the file itself")

print("ALL CHECKS PASSED")
