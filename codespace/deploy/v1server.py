"""KServe's own model server for a V1 deployment of the local backend (run in the serving env).

``python -m codespace.deploy.v1server`` with ``CODESPACE_MODEL_NAME``, ``CODESPACE_MODEL_FORMAT``,
``CODESPACE_MODEL_PATH`` and ``CODESPACE_MODEL_PORT`` set. MLServer speaks only the Open
Inference Protocol (V2); KServe's ``ModelServer`` serves V1 (``/v1/models/<name>:predict``,
``{"instances": [...]}`` -> ``{"predictions": [...]}``) and V2 from one
:class:`kserve.Model`. KServe's predictor images (sklearnserver, xgbserver, lgbserver) are
not on PyPI, so the model is loaded here the way they load it: ``joblib.load`` for
scikit-learn, ``Booster(model_file=...)`` for XGBoost and LightGBM.

Two things KServe 0.21 does that a library should not (FACTS.md): it parses ``sys.argv`` at
import (so arguments come from the environment and ``sys.argv`` is hidden while importing),
and it listens on 0.0.0.0 (here, loopback: :func:`_loopback_rest_server`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _load(fmt: str, path: str) -> Any:
    if fmt == "sklearn":
        import joblib

        return joblib.load(path)
    if fmt == "xgboost":
        import xgboost

        return xgboost.Booster(model_file=path)
    if fmt == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_file=path)
    raise SystemExit(f"codespace.deploy.v1server: no V1 server for {fmt} models")


def _predict(fmt: str, model: Any, rows: Any) -> list:
    import numpy

    data = numpy.asarray(rows)
    if fmt == "xgboost":
        import xgboost

        data = xgboost.DMatrix(data)
    result = model.predict(data)
    return result.tolist() if hasattr(result, "tolist") else list(result)


def _loopback_rest_server(model_server: Any) -> None:
    """Make KServe's REST server listen on 127.0.0.1 (it hard-codes 0.0.0.0)."""
    base = model_server.RESTServer

    class LoopbackRESTServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = "127.0.0.1"

    model_server.RESTServer = LoopbackRESTServer


def main() -> int:
    name = os.environ["CODESPACE_MODEL_NAME"]
    fmt = os.environ["CODESPACE_MODEL_FORMAT"]
    path = os.environ["CODESPACE_MODEL_PATH"]
    port = int(os.environ["CODESPACE_MODEL_PORT"])
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve
        from kserve import model_server
    finally:
        sys.argv = argv
    _loopback_rest_server(model_server)

    class Served(kserve.Model):  # type: ignore[misc, name-defined]
        def load(self) -> bool:
            self.model = _load(fmt, path)
            self.ready = True
            return True

        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None):
            if isinstance(payload, bytes | str):
                payload = json.loads(payload)
            if isinstance(payload, dict):
                return {"predictions": _predict(fmt, self.model, payload["instances"])}
            rows = payload.inputs[0].as_numpy()  # a V2 InferRequest
            result = _predict(fmt, self.model, rows)
            return kserve.InferResponse(
                model_name=name,
                infer_outputs=[kserve.InferOutput("predict", [len(result)], "FP64", result)],
                response_id=payload.id or "",
            )

    model = Served(name)
    model.load()
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1)
    server.start([model])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
