"""scipy.optimize.linear_sum_assignment on a few larger matrices (dev-only).

Writes tests/fixtures/lsap-scipy.json: a list of {rows, cols, cost (row-major), row_ind,
col_ind, total}. Cases: square and rectangular both ways, random reals, small integers
(many ties), and +inf (forbidden) entries.
Usage: /work/venv/bin/python tools/reference/make_lsap_fixture.py
"""
import json

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

rng = np.random.default_rng(7)
cases = []
for rows, cols, kind in [(20, 20, "real"), (15, 30, "real"), (30, 12, "real"),
                         (25, 25, "int"), (18, 40, "int"), (40, 9, "int"), (16, 16, "inf")]:
    if kind == "real":
        c = rng.standard_normal((rows, cols)) * 10
    else:
        c = rng.integers(0, 4, (rows, cols)).astype(np.float64)
    if kind == "inf":
        c[rng.random((rows, cols)) < 0.3] = np.inf
    r, k = linear_sum_assignment(c)
    cases.append({"rows": rows, "cols": cols, "kind": kind,
                  "cost": [float(x) if np.isfinite(x) else "inf" for x in c.ravel()],
                  "row_ind": r.tolist(), "col_ind": k.tolist(),
                  "total": float(c[r, k].sum())})
with open("tests/fixtures/lsap-scipy.json", "w") as f:
    json.dump({"reference": f"scipy {scipy.__version__} linear_sum_assignment", "cases": cases}, f)
print([(c["rows"], c["cols"], c["total"]) for c in cases])
