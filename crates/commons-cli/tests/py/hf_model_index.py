"""A model trained and validated by a Commons job, read through the official client's
`ModelCard`: its `model-index` carries the validated test metrics as `EvalResult`s marked
`verified`, naming the dataset at the revision the job used.

Run with HF_ENDPOINT, HF_HOME, MODEL (namespace/name), DATASET, DATASET_REVISION and ACCURACY
(the board's value for the model's main revision). Prints `ALL CHECKS PASSED` at the end.
"""

import os
import sys

from huggingface_hub import ModelCard, model_info

from checks import check


model = os.environ["MODEL"]
card = ModelCard.load(model)
results = card.data.eval_results or []
check(len(results) >= 3, f"the card has the validated metrics as eval results: {results}")
by_metric = {r.metric_type: r for r in results}
accuracy = by_metric.get("accuracy")
check(accuracy is not None, "accuracy is among them")
check(accuracy.verified is True, "and it is marked verified")
check(accuracy.metric_value == float(os.environ["ACCURACY"]), f"with the board's value: {accuracy.metric_value}")
check(accuracy.task_type == "image-classification", f"task: {accuracy.task_type}")
check(accuracy.dataset_type == os.environ["DATASET"], f"dataset: {accuracy.dataset_type}")
check(accuracy.dataset_split == "test", "the test split")
check(accuracy.dataset_revision == os.environ["DATASET_REVISION"], "at the revision the job pinned")
check(by_metric["loss"].metric_value > 0, "loss too")
check("Verification: reproduced bit for bit" in card.text, "the card says how it was verified")

# The Hub's own view of the same card.
info = model_info(model)
check(info.card_data is not None and info.card_data.eval_results, "model_info's card_data has the eval results too")
check(any(r.metric_type == "accuracy" and r.verified for r in info.card_data.eval_results), "verified accuracy in model_info")
print("ALL CHECKS PASSED")
