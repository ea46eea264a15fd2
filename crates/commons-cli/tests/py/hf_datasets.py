"""`datasets` and `pandas` read datasets hosted on Commons as a new user would: a CSV repo
with a train and a test file (splits from the file names), a Parquet repo loaded whole and
streamed, and `pandas.read_parquet("hf://datasets/…")` through huggingface_hub's file system.

Run with HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_DISABLE_XET=1 set. Prints `ALL CHECKS PASSED`.
"""

import io
import sys

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfApi


def check(cond, what):
    if not cond:
        print(f"CHECK FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


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

print("ALL CHECKS PASSED")
