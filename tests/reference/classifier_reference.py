"""Golden output of scikit-learn's shrinkage LDA for src/signals/classifier.rs.

LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto") (Ledoit-Wolf shrinkage on
standardised features) is the model affectd's subject-specific EEG classifier reimplements.
The data are synthetic "EEG feature" vectors: 3 classes, 12 correlated features, a known seed.

Run from the repository root:  .venv/bin/python tests/reference/classifier_reference.py
"""

import json
import pathlib

import numpy as np
import sklearn
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

OUT = pathlib.Path(__file__).resolve().parents[1] / "reference/golden/lda.json"

rng = np.random.default_rng(20261129)
n_per_class, d = (40, 30, 50), 12
mix = rng.normal(size=(d, d)) * 0.4 + np.eye(d)
X, y = [], []
for k, n in enumerate(n_per_class):
    centre = rng.normal(size=d) * 0.8
    X.append(rng.normal(size=(n, d)) @ mix + centre + 3.0)
    y += [k] * n
X = np.vstack(X)
y = np.array(y)
test = rng.normal(size=(20, d)) @ mix + 3.0

lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)
OUT.write_text(
    json.dumps(
        {
            "generator": "tests/reference/classifier_reference.py",
            "sklearn": sklearn.__version__,
            "x": X.tolist(),
            "y": y.tolist(),
            "coef": lda.coef_.tolist(),
            "intercept": lda.intercept_.tolist(),
            "test_x": test.tolist(),
            "test_proba": lda.predict_proba(test).tolist(),
        }
    )
)
print(f"wrote {OUT}")
