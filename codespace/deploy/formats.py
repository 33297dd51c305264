"""Which model format an artifact is, read from the artifact itself (pure, reads only files).

One table (:data:`FORMATS`) says, per format, what serves it: the MLServer runtime (the local
backend's Open Inference Protocol server), whether KServe's own model server serves V1 for it
locally, and the ``modelFormat`` name of KServe's ClusterServingRuntimes. :func:`detect` looks
at the artifact: a file's suffix *and* its first bytes (a ``.joblib`` that is not a pickle is
refused as corrupt, not deployed to crash later), a directory's marker files (``MLmodel`` for
MLflow, ``config.json`` for Hugging Face). Anything else is refused with the list of what is
supported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class FormatError(ValueError):
    """The artifact is missing, corrupt or of a format no backend serves; says which."""


@dataclass(frozen=True)
class ModelFormat:
    name: str  # ours and KServe's modelFormat name
    description: str
    suffixes: tuple[str, ...]  # for a file; () for a directory format
    marker: str | None  # for a directory: the file that identifies it
    mlserver_package: str | None  # the MLServer runtime's distribution (local V2)
    mlserver_runtime: str | None  # its implementation class
    library: str  # the distribution the model was saved with (pinned to the codespace's)
    v1_local: bool  # KServe's model server serves it over V1 (codespace.deploy.v1server)


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat(
            "sklearn",
            "scikit-learn (joblib or pickle)",
            (".joblib", ".pkl", ".pickle"),
            None,
            "mlserver-sklearn",
            "mlserver_sklearn.SKLearnModel",
            "scikit-learn",
            True,
        ),
        ModelFormat(
            "xgboost",
            "XGBoost (.json, .ubj, .bst)",
            (".json", ".ubj", ".bst"),
            None,
            "mlserver-xgboost",
            "mlserver_xgboost.XGBoostModel",
            "xgboost",
            True,
        ),
        ModelFormat(
            "lightgbm",
            "LightGBM text model (.txt, .lgb, .lgbm)",
            (".txt", ".lgb", ".lgbm"),
            None,
            "mlserver-lightgbm",
            "mlserver_lightgbm.LightGBMModel",
            "lightgbm",
            True,
        ),
        ModelFormat("onnx", "ONNX (.onnx)", (".onnx",), None, None, None, "onnx", False),
        ModelFormat(
            "mlflow",
            "MLflow model directory (MLmodel)",
            (),
            "MLmodel",
            "mlserver-mlflow",
            "mlserver_mlflow.MLflowRuntime",
            "mlflow",
            False,
        ),
        ModelFormat(
            "huggingface",
            "Hugging Face model directory (config.json)",
            (),
            "config.json",
            "mlserver-huggingface",
            "mlserver_huggingface.HuggingFaceRuntime",
            "transformers",
            False,
        ),
    )
}

# First bytes of what joblib/pickle write: a pickle protocol 2+ header, or joblib's compressors.
_PICKLE_MAGIC = (b"\x80", b"\x78\x9c", b"\x78\x01", b"\x78\xda", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def supported() -> str:
    """The supported formats, for messages."""
    return "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())


def detect(path: Path, declared: str | None = None) -> ModelFormat:
    """The format of the artifact at ``path`` (a file or a directory); ``declared`` (a name
    in :data:`FORMATS`) is checked against the artifact instead of guessed."""
    if declared is not None and declared not in FORMATS:
        raise FormatError(f"format {declared!r} is not supported; supported: {supported()}")
    if not path.exists():
        raise FormatError(f"{path.name}: no such file or directory")
    found = _directory_format(path) if path.is_dir() else _file_format(path)
    if found is None:
        raise FormatError(
            f"{path.name}: not a model this platform can serve; supported: {supported()}"
        )
    if declared is not None and declared != found.name:
        raise FormatError(f"{path.name} is a {found.description} model, not {declared}")
    return found


def _directory_format(path: Path) -> ModelFormat | None:
    for fmt in FORMATS.values():
        if fmt.marker and (path / fmt.marker).is_file():
            return fmt
    return None


def _head(path: Path, size: int = 64) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise FormatError(f"{path.name}: cannot be read ({error.strerror})") from None


def _file_format(path: Path) -> ModelFormat | None:
    suffix = path.suffix.lower()
    head = _head(path)
    if not head:
        raise FormatError(f"{path.name} is empty")
    if suffix in FORMATS["sklearn"].suffixes:
        if not (head.startswith(_PICKLE_MAGIC) or head.startswith(_LZ4_MAGIC)):
            raise FormatError(f"{path.name} is not a joblib or pickle file (corrupt or truncated)")
        return FORMATS["sklearn"]
    if suffix == ".json":
        return FORMATS["xgboost"] if _is_xgboost_json(path) else None
    if suffix in (".ubj", ".bst"):
        return FORMATS["xgboost"]
    if suffix in FORMATS["lightgbm"].suffixes:
        return FORMATS["lightgbm"] if head.startswith(b"tree\n") else None
    if suffix == ".onnx":
        return FORMATS["onnx"]
    return None


def _is_xgboost_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"{path.name} is not valid JSON: {error}") from None
    return isinstance(data, dict) and "learner" in data


def suggest_name(path: Path) -> str:
    """A deployment name from the artifact's name (a DNS label, at most 45 characters)."""
    stem = path.name if path.is_dir() else path.stem
    name = "".join(c if c.isalnum() else "-" for c in stem.lower()).strip("-")
    name = "-".join(part for part in name.split("-") if part)[:45].strip("-")
    if not name or not name[0].isalpha():
        name = f"model-{name}".strip("-")[:45]
    return name
