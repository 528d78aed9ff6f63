"""Model directory loader: model.json sidecar + model.onnx (the format bot4.research.train writes).

The model bytes are read once, their SHA-256 is checked against the sidecar, and the same bytes
go to the core, so the file that was verified is the file that runs. Every refusal raises
bot4.errors.ModelError with the cause in the message.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from bot4 import _core
from bot4.errors import ModelError

SIDECAR_FILE = "model.json"


def find_onnxruntime_library() -> str:
    """Path of the libonnxruntime shared library inside the installed onnxruntime wheel, or ""
    when onnxruntime is not installed (the tree path still works then)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.submodule_search_locations:
        return ""
    for root in spec.submodule_search_locations:
        hits = sorted(glob.glob(os.path.join(root, "capi", "libonnxruntime.so*")))
        if hits:
            return hits[0]
    return ""


def _matrix(matrix):
    # A list would be converted (and on failure echoed whole in the error): name the type instead.
    if not isinstance(matrix, np.ndarray):
        raise TypeError(f"expected a 2-D numpy array [rows, features] of float32 or float64, got "
                        f"{type(matrix).__name__}; use np.asarray(rows, dtype=np.float32)")
    return matrix


class LoadedModel:
    """A model ready to run: `predict_proba(matrix)` (calibrated), `raw_proba(matrix)`,
    `predict_one(row)`; `.kind` is "tree" or "onnxruntime"; `.sidecar` is the parsed model.json."""

    def __init__(self, core_model, sidecar: dict, path: Path | None):
        self._core = core_model
        self.sidecar = sidecar
        self.path = path

    @property
    def kind(self) -> str:
        return self._core.kind

    @property
    def n_features(self) -> int:
        return self._core.n_features

    @property
    def n_trees(self) -> int:
        return self._core.n_trees

    @property
    def max_depth(self) -> int:
        return self._core.max_depth

    @property
    def feature_config(self):
        """The bot4.features.FeatureConfig the model was trained with (None when the sidecar
        predates recording it)."""
        fc = self.sidecar.get("features")
        if fc is None:
            return None
        import msgspec

        from bot4.features import FeatureConfig

        try:
            return msgspec.convert(fc, FeatureConfig)
        except msgspec.ValidationError as exc:
            raise ModelError(f"model.json 'features' is not a valid FeatureConfig: {exc}") from exc

    @property
    def feature_names(self) -> list[str]:
        return list(self.sidecar.get("feature_names", []))

    @property
    def core(self):
        """The _core.inference.Model (benchmarks call time_batch1 on it)."""
        return self._core

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated p(class 1) per row, shape (n,) float64 (column 1 of scikit-learn's (n, 2)
        predict_proba). `matrix`: C-contiguous float32/float64 array [rows, n_features]."""
        return self._core.predict_proba(_matrix(matrix))

    def raw_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Uncalibrated P(up), float64 (n,), of a C-contiguous float32/float64 (n, n_features)
        matrix: the model's own output before the sidecar's calibration map."""
        return self._core.raw_proba(_matrix(matrix))

    def predict_one(self, row: np.ndarray) -> float:
        """Calibrated P(up) of one float32/float64 (n_features,) row, as a float."""
        return self._core.predict_one(row)

    def __repr__(self) -> str:
        return (f"LoadedModel(kind={self.kind!r}, n_features={self.n_features}, n_trees={self.n_trees}, "
                f"path={str(self.path)!r})")


def load_bytes(data: bytes, n_features: int, *, calibration: dict | None = None, sidecar: dict | None = None,
               path: str | os.PathLike | None = None, engine: str = "auto", ort_library: str | None = None,
               intra_op_threads: int = 1) -> LoadedModel:
    """Loads model bytes already verified by the caller. engine: "auto" | "tree" | "onnxruntime"."""
    if engine not in ("auto", "tree", "onnxruntime"):
        raise ModelError(f"unknown engine {engine!r} (auto, tree, onnxruntime)")
    lib = find_onnxruntime_library() if ort_library is None else ort_library
    cx = cy = None
    if calibration:
        try:
            cx = [float(v) for v in calibration["x"]]
            cy = [float(v) for v in calibration["y"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"sidecar calibration table malformed: {exc}") from exc
    core = _core.inference.Model.from_bytes(
        bytes(data), int(n_features), ort_library=lib or "", calibration_x=cx, calibration_y=cy,
        force_ort=engine == "onnxruntime", force_tree=engine == "tree", intra_op_threads=intra_op_threads)
    return LoadedModel(core, dict(sidecar or {}), Path(path) if path is not None else None)


def _read_sidecar(directory: Path) -> dict:
    sidecar_path = directory / SIDECAR_FILE
    if not sidecar_path.is_file():
        raise ModelError(f"model sidecar missing: {sidecar_path}")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model sidecar {sidecar_path} is not valid JSON: {exc}") from exc
    if not isinstance(sidecar, dict):
        raise ModelError(f"model sidecar {sidecar_path} is not a JSON object")
    for key in ("sha256", "model_file", "n_features"):
        if key not in sidecar:
            raise ModelError(f"model sidecar {sidecar_path} lacks the key {key!r}")
    return sidecar


def load(path: str | os.PathLike, *, check_features: bool = False, expected_feature_names: list[str] | None = None,
         engine: str = "auto", ort_library: str | None = None, intra_op_threads: int = 1) -> LoadedModel:
    """Loads a model directory (model.json + model file).

    Checks, each refused with ModelError naming the cause: sidecar present and well-formed; model
    file present; SHA-256 of the bytes equals the sidecar's; with check_features (or
    expected_feature_names), the sidecar's feature names equal bot4.features.feature_names() (or
    the given list) in order; the model parses, its input width equals n_features, and its
    operators are supported by the chosen engine."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    sidecar = _read_sidecar(directory)
    model_file = directory / str(sidecar["model_file"])
    if not model_file.is_file():
        raise ModelError(f"model file missing: {model_file}")
    data = model_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != str(sidecar["sha256"]).lower():
        raise ModelError(f"SHA-256 mismatch for {model_file}: file has {digest}, sidecar says {sidecar['sha256']} "
                         "(tampered, truncated or replaced model file)")
    n_features = sidecar["n_features"]
    if not isinstance(n_features, int) or n_features <= 0:
        raise ModelError(f"sidecar n_features must be a positive integer, got {n_features!r}")
    names = sidecar.get("feature_names")
    if names is not None and len(names) != n_features:
        raise ModelError(f"feature-count mismatch in the sidecar: {len(names)} feature names, n_features={n_features}")
    if check_features or expected_feature_names is not None:
        if expected_feature_names is None:
            from bot4.features import feature_names

            expected_feature_names = feature_names()
        expected = list(expected_feature_names)
        if names is None:
            raise ModelError("sidecar has no feature_names to check against the feature engine")
        if len(names) != len(expected):
            raise ModelError(f"feature-count mismatch: model has {len(names)} features, the feature engine "
                             f"produces {len(expected)}")
        for i, (have, want) in enumerate(zip(names, expected)):
            if have != want:
                raise ModelError(f"feature-name mismatch at column {i}: model has {have!r}, the feature engine "
                                 f"has {want!r}")
    return load_bytes(data, n_features, calibration=sidecar.get("calibration"), sidecar=sidecar, path=directory,
                      engine=engine, ort_library=ort_library, intra_op_threads=intra_op_threads)


class ModelSlot:
    """Holds the model an engine runs. `swap(path)` loads a new model and installs it only when
    the load succeeds; a failed load raises and leaves the previous model running."""

    def __init__(self, model: LoadedModel | None = None):
        self._model = model
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def swap(self, path: str | os.PathLike, **load_kwargs) -> LoadedModel:
        """Load the model at `path` (bot4.models.load keyword arguments) and make it current; on a
        ModelError the old model stays and `last_error` says why."""
        try:
            new = load(path, **load_kwargs)
        except ModelError as exc:
            self.last_error = str(exc)
            raise
        with self._lock:
            self._model = new
            self.last_error = None
        return new

    def try_swap(self, path: str | os.PathLike, **load_kwargs) -> bool:
        """Like swap() but returns False (reason in last_error) instead of raising."""
        try:
            self.swap(path, **load_kwargs)
        except ModelError:
            return False
        return True

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """The current model's predict_proba (ModelError if none is loaded)."""
        model = self._model
        if model is None:
            raise ModelError("no model loaded")
        return model.predict_proba(matrix)

    def predict_one(self, row: np.ndarray) -> float:
        """The current model's predict_one (ModelError if none is loaded)."""
        model = self._model
        if model is None:
            raise ModelError("no model loaded")
        return model.predict_one(row)
