"""A trained model behind one interface, from a checkpoint, a run folder, a model folder or an ONNX file.

:class:`Predictor` turns float ``(B, 1, 128, 128)`` batches in [0, 1] into logits and
probabilities. The PyTorch path runs as the run's Trainer evaluated it (its precision, e.g.
bf16 autocast, channels-last inputs), so predictions agree with the recorded metrics; a model
folder (``export.py format=hf``: config.json and model.safetensors, no pickle; loaded by
:meth:`Predictor.from_pretrained`) runs as the checkpoint it came from; the ONNX path runs the
exported graph in onnxruntime (fp32). :func:`predict_files` reads image
files in batches (:mod:`handgestures.inference.preprocess`) and yields one record per file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handgestures.errors import CheckpointError
from handgestures.inference.preprocess import decode_many, to_tensor
from handgestures.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, WRITTEN_BY, is_model_folder
from handgestures.runfolder.checkpoints import resolve_checkpoint
from handgestures.training.checkpoint import load_module

ONNX_METADATA_KEY = "handgestures"
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
PLAIN = {"32-true": torch.float32, "32": torch.float32}


def autocast_context(precision: str):
    """The context Lightning's CPU precision plugin evaluates in, for ``precision``."""
    if precision in AUTOCAST:
        return torch.autocast("cpu", dtype=AUTOCAST[precision])
    if precision in PLAIN:
        return contextlib.nullcontext()
    raise ValueError(f"precision={precision!r} is not supported here: expected one of {sorted({*AUTOCAST, *PLAIN})}")


class Predictor:
    """Logits and probabilities of a trained model; ``description`` is its run's record."""

    kind = "abstract"

    def __init__(self, description: dict[str, Any], source: Path) -> None:
        self.description = description
        self.source = source
        self.class_names = list(description.get("class_names") or [str(i) for i in range(6)])

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, precision: str | None = None) -> Predictor:
        """The model of a model folder (config.json + model.safetensors), read without pickle.

        It runs as its checkpoint ran (the same network, layout and recorded precision unless
        ``precision`` is given), so its outputs equal the checkpoint's bit for bit.
        """
        if not is_model_folder(folder):
            raise CheckpointError(f"{str(folder)!r} is not a model folder: expected a folder with {CONFIG_FILE} and "
                                  f"{WEIGHTS_FILE}, as {WRITTEN_BY} writes it")  # fmt: skip
        return load_predictor(folder, precision=precision)

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # float32 (B, num_classes)
        raise NotImplementedError

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).float().softmax(dim=-1)


class TorchPredictor(Predictor):
    """A HandGestureClassifier from a checkpoint, on the CPU, in its run's precision."""

    kind = "pytorch"

    def __init__(self, module, description: dict[str, Any], source: Path, precision: str | None = None) -> None:
        super().__init__(description, source)
        self.module = module
        self.precision = str(precision or description.get("precision") or "32-true")
        autocast_context(self.precision)  # reject an unknown precision now, not at the first batch
        self.channels_last = bool(module.hparams.get("channels_last", True))

    def context(self):
        return autocast_context(self.precision)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.precision in PLAIN:
            x = x.to(PLAIN[self.precision])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self.context():
            return self.module(x).float()


def check_finite_onnx(path: Path) -> None:
    """A :class:`CheckpointError` naming the file and the first initializer holding NaN or infinity."""
    try:
        import onnx  # the export extra: only for .onnx files
        from onnx import numpy_helper
    except ImportError:  # onnxruntime without onnx: its outputs are still checked per image
        return
    for init in onnx.load(str(path), load_external_data=False).graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise CheckpointError(
                f"{str(path)!r} has non-finite weights: initializer {init.name!r} holds "
                f"{int((~np.isfinite(values)).sum())} NaN or infinite values; it cannot predict"
            )


class OnnxPredictor(Predictor):
    """An exported ``.onnx`` graph in onnxruntime; its description is in the file's metadata."""

    kind = "onnx"

    def __init__(self, path: Path, threads: int | None = None, require_metadata: bool = True) -> None:
        try:
            import onnxruntime as ort  # the export extra: only for .onnx files
        except ImportError as err:
            raise ImportError("reading .onnx files needs onnxruntime: pip install 'handgestures[export]'") from err
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        if not require_metadata:  # a check of a fresh export: its caller reports what fails
            options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{str(path)!r} is not a readable ONNX model: {err}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta and require_metadata:
            raise CheckpointError(
                f"{str(path)!r} has no '{ONNX_METADATA_KEY}' metadata: not exported by handgestures-export"
            )
        if require_metadata:  # a model to use (a fresh export's check comes from a checked network)
            check_finite_onnx(path)
        super().__init__(json.loads(meta.get(ONNX_METADATA_KEY, "{}")), path)
        self.precision = "32-true"
        self.input_name = self.session.get_inputs()[0].name

    def context(self):
        return contextlib.nullcontext()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def load_predictor(
    path: str | os.PathLike, precision: str | None = None, eval_names: list[str] | None = None
) -> Predictor:
    """The model at ``path``: a ``.ckpt``, a run folder (its best checkpoint), a model folder or an ``.onnx``."""
    file = resolve_checkpoint(path)
    if file.suffix == ".onnx" and file.is_file():
        if precision not in (None, "32-true", "32"):
            raise ValueError(f"precision={precision!r}: an ONNX model runs in fp32 (32-true)")
        return OnnxPredictor(file)
    module, description = load_module(file, eval_names=eval_names)
    return TorchPredictor(module, description, file, precision)


@dataclass
class PredictionRun:
    """Counters of one :func:`predict_files` call, filled as records are yielded."""

    images: int = 0
    failed: int = 0
    resized: int = 0
    seconds: float = 0.0
    counts: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        per_class = ", ".join(f"{k}: {self.counts.get(k, 0)}" for k in sorted(self.counts))
        return (
            f"summary: {self.images} images predicted, {self.failed} failed, {self.resized} resized, "
            f"in {self.seconds:.2f} s ({rate:.0f} images/s); predicted fingers {{{per_class}}}"
        )


def predict_files(
    predictor: Predictor, paths: list[str], batch_size: int = 256, threads: int | None = None,
    run: PredictionRun | None = None, prefetch: bool = True,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """One record per path, in order: ``fingers``, ``probability``, ``probabilities``, or ``error``.

    Files are decoded ``batch_size`` at a time on a thread pool, then predicted as one batch;
    with ``prefetch`` the next batch is decoded while the network runs on this one. A file
    that cannot be read, or for which the model's probabilities are not finite, gives an
    ``error`` record and the others go on.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    run = run if run is not None else PredictionRun()
    start = time.perf_counter()
    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as background:
        pending = background.submit(decode_many, chunks[0], threads) if chunks and prefetch else None
        for k, chunk in enumerate(chunks):
            decoded = pending.result() if pending is not None else decode_many(chunk, threads)
            pending = (
                background.submit(decode_many, chunks[k + 1], threads) if prefetch and k + 1 < len(chunks) else None
            )
            good = [d for d in decoded if d.pixels is not None]
            probs = predictor.probabilities(to_tensor([d.pixels for d in good])).tolist() if good else []
            rows = iter(probs)
            for d in decoded:
                if d.error is not None:
                    run.failed += 1
                    yield {"file": d.path, "error": d.error}
                    continue
                p = next(rows)
                if not all(map(math.isfinite, p)):  # never a NaN probability: an error for this file
                    run.failed += 1
                    yield {"file": d.path, "error": "the model gave non-finite probabilities (NaN or infinity)"}
                    continue
                fingers = max(range(len(p)), key=p.__getitem__)
                run.images += 1
                run.resized += any(n.startswith("resized") for n in d.notices)
                run.counts[fingers] = run.counts.get(fingers, 0) + 1
                run.seconds = time.perf_counter() - start
                yield {
                    "file": d.path, "fingers": fingers, "probability": round(p[fingers], 6),
                    "probabilities": {name: round(v, 6) for name, v in zip(predictor.class_names, p)},
                    "notices": d.notices,
                }  # fmt: skip
    run.seconds = time.perf_counter() - start
