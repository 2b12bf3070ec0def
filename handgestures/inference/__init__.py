"""Using a trained model: predict, evaluate, export, model card and demo.

Names are imported lazily, so ``handgestures.train`` importing the model card writer does
not pull in onnxruntime or gradio.
"""

from importlib import import_module

_EXPORTS = {
    "Predictor": "handgestures.inference.predictor",
    "load_predictor": "handgestures.inference.predictor",
    "predict_files": "handgestures.inference.predictor",
    "evaluate": "handgestures.inference.evaluate",
    "export_onnx": "handgestures.inference.export",
    "write_model_card": "handgestures.inference.card",
    "build_demo": "handgestures.inference.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'handgestures.inference' has no attribute {name!r}")
