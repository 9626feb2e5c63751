"""Trains the example model: ordinary least squares on scikit-learn's diabetes data (442 patients x 10 features,
the data set the seed guide's test sample is written for), and writes its coefficients as JSON into each example
folder. Reproducible: fixed split, no randomness in the fit.

    /usr/bin/python3 examples/models/train_diabetes.py      # Debian: apt-get install python3-sklearn
"""
import json
import os

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))

data = load_diabetes()
X, y = data.data, data.target
assert X.shape == (442, 10), X.shape
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = LinearRegression().fit(X_train, y_train)
pred = model.predict(X_test)
metrics = {
    "r2": round(float(r2_score(y_test, pred)), 6),
    "rmse": round(float(np.sqrt(mean_squared_error(y_test, pred))), 6),
}
doc = {
    "kind": "linear-regression",
    "dataset": "sklearn.datasets.load_diabetes (442 x 10, mean-centred and scaled features)",
    "feature_names": list(data.feature_names),
    "intercept": float(model.intercept_),
    "coef": [float(c) for c in model.coef_],
    "metrics": metrics,
    "train_rows": int(X_train.shape[0]),
    "test_rows": int(X_test.shape[0]),
}
for folder in ("diabetes-node", "diabetes-python"):
    with open(os.path.join(HERE, folder, "model.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

sample = X[:2].round(6).tolist()
expected = (np.array(sample) @ np.array(doc["coef"]) + doc["intercept"]).tolist()
print(json.dumps({"metrics": metrics, "sample": {"data": sample}, "expected_output": expected}))
