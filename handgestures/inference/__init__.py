"""Using a trained model: predict, evaluate, export and demo (the model card is the run folder's).

May import: :mod:`handgestures.training` (loading a module), :mod:`handgestures.runfolder`,
:mod:`handgestures.data`, :mod:`handgestures.models` and the shared leaves; never
:mod:`handgestures.launch` or :mod:`handgestures.analysis`.

Names are imported lazily, so ``handgestures.training.train`` importing the model card writer does
not pull in onnxruntime or gradio.
"""

from importlib import import_module

_EXPORTS = {
    "Predictor": "handgestures.inference.predictor",
    "load_predictor": "handgestures.inference.predictor",
    "predict_files": "handgestures.inference.predictor",
    "evaluate": "handgestures.inference.evaluate",
    "export_onnx": "handgestures.inference.export",
    "export_hf": "handgestures.inference.hub",
    "write_model_card": "handgestures.runfolder.card",
    "build_demo": "handgestures.inference.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'handgestures.inference' has no attribute {name!r}")
