"""Batch entry script (Azure ML ParallelRunStep style): init() once per worker, run(mini_batch) per mini-batch.

run() returns one element per input; an input it cannot score is left out, and the service counts it as a
failed input (error_threshold). mini_batch is
  - for input_kind "tabular": a list of rows (dicts keyed by the CSV header), or a pandas DataFrame;
  - for input_kind "files": a list of file paths (here: CSV files, one summary line per file).
"""
import csv
import json
import math
import os

model = None


def init():
    global model
    base = os.environ.get("AZUREML_MODEL_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
    path = base if base.endswith(".json") else os.path.join(base, "model.json")
    with open(path, encoding="utf-8") as f:
        model = json.load(f)


def predict(row):
    """The class label for one row, or None when a feature is missing or not a number."""
    try:
        x = [float(row[name]) for name in model["features"]]
    except (KeyError, TypeError, ValueError):
        return None
    if any(math.isnan(v) for v in x):
        return None
    scores = [sum(w * v for w, v in zip(ws, x)) + b for ws, b in zip(model["weights"], model["bias"])]
    return model["classes"][scores.index(max(scores))]


def run(mini_batch):
    if hasattr(mini_batch, "to_dict"):  # a pandas DataFrame (Azure ML TabularDataset style)
        mini_batch = mini_batch.to_dict("records")
    results = []
    for item in mini_batch:
        if isinstance(item, str):
            with open(item, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            labels = [predict(r) for r in rows]
            counts = {c: labels.count(c) for c in model["classes"]}
            results.append("{0}: {1} rows {2}".format(os.path.basename(item), len(rows), json.dumps(counts, sort_keys=True)))
        else:
            label = predict(item)
            if label is not None:
                results.append("{0},{1}".format(item.get("id"), label))
    return results
