"""A deployed model's signature, read by its own library, and a test request built from it.

The model is loaded by the serving environment's Python, as the owner's account in the
deployment's sandbox (a pickle runs code), and asked what it takes: scikit-learn's
``n_features_in_`` / ``feature_names_in_`` / ``classes_``, XGBoost's and LightGBM's number of
features. :func:`example_request` turns that into a request body of the deployment's
protocol (zeros of the right shape), which the lab's Test request sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from codespace.deploy.models import DeploymentRecord, Signature
from codespace.streaming import stream

SCRIPT = r"""
import json, sys
fmt, path = sys.argv[1], sys.argv[2]
out = {}
if fmt == "sklearn":
    import joblib
    model = joblib.load(path)
    out["features"] = int(getattr(model, "n_features_in_", 0) or 0)
    names = getattr(model, "feature_names_in_", None)
    out["names"] = [str(n) for n in names] if names is not None else []
    classes = getattr(model, "classes_", None)
    if classes is not None:
        out["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
elif fmt == "xgboost":
    import xgboost
    booster = xgboost.Booster(model_file=path)
    out["features"] = int(booster.num_features())
elif fmt == "lightgbm":
    import lightgbm
    out["features"] = int(lightgbm.Booster(model_file=path).num_feature())
print("SIGNATURE " + json.dumps(out))
"""


def example_request(features: int, protocol: str, rows: int = 1) -> dict[str, Any]:
    """A request body with ``rows`` rows of ``features`` zeros."""
    data = [[0.0] * features for _ in range(rows)]
    if protocol == "v1":
        return {"instances": data}
    flat = [value for row in data for value in row]
    tensor = {"name": "input-0", "shape": [rows, features], "datatype": "FP64", "data": flat}
    return {"inputs": [tensor]}


def signature_from(found: Mapping[str, Any], protocol: str) -> Signature:
    features = int(found.get("features") or 0)
    if not features:
        return Signature(note="the model does not say how many features it takes")
    names = list(found.get("names") or [])
    inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, features], "features": names}]
    outputs: list[dict[str, Any]] = []
    if found.get("classes"):
        outputs.append({"name": "predict", "classes": list(found["classes"])})
    return Signature(inputs=inputs, outputs=outputs, example=example_request(features, protocol))


async def signature_of(
    wrap: Callable[[list[str]], list[str]],
    python: Path,
    model: Path,
    record: DeploymentRecord,
    environ: dict[str, str],
) -> Signature:
    """Load ``model`` with ``python`` (through ``wrap``) and describe it."""
    if record.format not in ("sklearn", "xgboost", "lightgbm"):
        return Signature(note=f"{record.format} models do not describe their inputs here")
    argv = wrap([str(python), "-I", "-c", SCRIPT, record.format, str(model)])
    done = await stream(argv, env=environ, timeout=120)
    lines = [line for line in done.tail if line.startswith("SIGNATURE ")]
    if not done.ok or not lines:
        return Signature(note=f"the model could not be inspected: {done.tail_text()[-500:]}")
    return signature_from(json.loads(lines[-1].removeprefix("SIGNATURE ")), record.protocol)
