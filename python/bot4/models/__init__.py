"""Loading trained models for inference: `load(path)` returns a LoadedModel (tree path or ONNX
Runtime in the C++ core, isotonic calibration applied in the core); ModelSlot keeps the previous
model when a new load fails."""

from bot4.models.loader import (
    LoadedModel,
    ModelSlot,
    find_onnxruntime_library,
    load,
    load_bytes,
)

__all__ = ["LoadedModel", "ModelSlot", "find_onnxruntime_library", "load", "load_bytes"]
