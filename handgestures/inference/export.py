"""ONNX export of a checkpoint's network, checked against PyTorch in onnxruntime.

Choices, made explicitly rather than left to torch's defaults:

* **exporter**: ``torch.onnx.export(dynamo=True)``, the ``torch.export``-based exporter
  (torch 2.9+'s default, and the maintained one; the TorchScript exporter is deprecated).
  It needs onnxscript, hence the ``[export]`` extra: onnx, onnxruntime, onnxscript.
* **opset**: 18 by default, given explicitly (each torch release moves its default); any of
  :func:`supported_opsets` (17 up to the installed onnx package's newest), checked before any
  work. The exporter writes 18 and converts to the opset asked for; the written file's
  ``opset_import`` is checked, and a file of another opset is never kept.
* **no overwrite**: an existing output file is kept unless ``overwrite`` is true; the file is
  written under a temporary name and renamed when complete, so a failed export loses nothing.
* **batch axis**: dynamic (``dynamic_shapes``), so one file serves any batch size; height
  and width stay 128.
* **graph**: the network's output logits, in fp32; softmax is applied by the caller, as
  for the PyTorch model. CarlosNet's fused first block (:mod:`handgestures.models.fused`, a
  custom autograd node for CPU training) is tried first; when it does not export, the
  layer-by-layer graph (``fused=False``: the same function) is exported instead, and the
  file's metadata says which (``graph``). The fallback is said in one plain line; the
  exporter's or onnxruntime's own error text only with ``verbose`` (it is long, and the
  exported file is right either way).

The file's metadata (``handgestures``) holds the checkpoint's description, so predict, eval
and the demo read an ``.onnx`` like a checkpoint. After export the same batch of built-in
hands runs through onnxruntime and the fp32 PyTorch network: the report gives the largest
probability difference and the argmax agreement.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from handgestures.data.hands import generate_hands
from handgestures.inference.predictor import ONNX_METADATA_KEY, OnnxPredictor
from handgestures.models import fused
from handgestures.training.checkpoint import load_module

log = logging.getLogger(__name__)
DEFAULT_OPSET = 18
MIN_OPSET = 17  # below, the exporter's version converter silently keeps 18; the networks export from 17 up


def supported_opsets() -> range:
    """The ONNX opsets an export may ask for: :data:`MIN_OPSET` to the installed onnx's newest."""
    try:
        import onnx  # the export extra: only when exporting
    except ImportError as err:
        raise ImportError("ONNX export needs the export extra: pip install 'handgestures[export]'") from err
    return range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1)


def check_opset(opset: object) -> int:
    """``opset`` as an int, or ValueError naming it and the supported range."""
    supported = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in supported:
        raise ValueError(
            f"opset={opset}: expected an integer ONNX opset in the supported range "
            f"{supported.start}..{supported.stop - 1} (the installed onnx's newest is {supported.stop - 1})"
        )
    return opset


def check_output(output: str | os.PathLike, overwrite: bool) -> Path:
    """``output`` as a Path; ValueError when it exists and ``overwrite`` is false."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise ValueError(f"output {str(output)!r} exists: pass overwrite=true to replace it, or another output=")
    return output


FALLBACK = "exported with the layer-by-layer graph (same function): "
QUIET_LOGGERS = ("onnx_ir",)  # its warnings on the exporter's own attributes ("Attribute type is ambiguous")


def _export(net: torch.nn.Module, path: Path, opset: int, verbose: bool = False) -> None:
    import onnxscript  # noqa: F401  (the dynamo exporter needs it: say so before torch does)

    # conv_maxpool2d caches its index tensors (functools.cache): tracing must neither use real
    # ones nor leave traced ones behind for the eager calls that follow in this process
    fused._placement.cache_clear()
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        if not verbose:
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        _trace(net, path, opset)
    finally:
        fused._placement.cache_clear()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _trace(net: torch.nn.Module, path: Path, opset: int) -> None:
    example = torch.zeros(2, 1, 128, 128)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, (example,), dynamo=True, opset_version=opset, input_names=["image"], output_names=["logits"],
            dynamic_shapes=({0: batch},), external_data=False, optimize=True, verbose=False,
        )  # fmt: skip
    program.save(str(path), external_data=False)


def check_parity(onnx_path: Path, net: torch.nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """Largest probability difference and argmax agreement of onnxruntime against fp32 PyTorch."""
    session = OnnxPredictor(onnx_path, require_metadata=False)
    with torch.inference_mode():
        expected = net(images.float()).float().softmax(-1)
    got = session.probabilities(images)
    return {
        "images": len(images),
        "max_prob_diff": float((got - expected).abs().max()),
        "argmax_agreement": float((got.argmax(-1) == expected.argmax(-1)).float().mean()),
    }


def check_images(n: int) -> torch.Tensor:
    """``n`` built-in hands (a fixed seed) as floats in [0, 1]: the images an export is checked on."""
    images, _, _ = generate_hands(12 * -(-n // 12), seed=123)
    return images[:n].float() / 255


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()


def _runs_the_same(path: Path, net: torch.nn.Module, images: torch.Tensor, tolerance: float) -> tuple[str, str] | None:
    """None when the ONNX file gives ``net``'s probabilities on ``images`` and on one image;
    else why not: a plain phrase, and the full error text."""
    try:
        for batch in (images, images[:1]):
            parity = check_parity(path, net, batch)
            if parity["max_prob_diff"] > tolerance or parity["argmax_agreement"] < 1.0:
                return "the graph of CarlosNet's fused first block gives other outputs than PyTorch", str(parity)
    except Exception as err:  # onnxruntime's own exception types
        return "onnxruntime cannot run the graph of CarlosNet's fused first block", _error_text(err)
    return None


def export_onnx(
    ckpt: str | os.PathLike, output: str | os.PathLike, opset: int = DEFAULT_OPSET, check_batch: int = 8,
    try_fused: bool = True, tolerance: float = 1e-5, overwrite: bool = False, verbose: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Exports a checkpoint's network to ``output`` (see :func:`export_net`)."""
    check_opset(opset)
    check_output(output, overwrite)
    log.info("exporting %s to %s (ONNX opset %d: tracing, then a check in onnxruntime; several seconds) ...",
             ckpt, output, opset)  # fmt: skip
    module, description = load_module(ckpt)
    return export_net(module.net, description, output, opset, check_batch, try_fused, tolerance, overwrite, verbose)


def export_net(
    net: torch.nn.Module, description: dict[str, Any], output: str | os.PathLike, opset: int = DEFAULT_OPSET,
    check_batch: int = 8, try_fused: bool = True, tolerance: float = 1e-5, overwrite: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Exports ``net`` to ``output``; returns what was done and the parity check.

    A fused CarlosNet is exported as it is first (``try_fused``), and kept only if
    onnxruntime runs it and gives the same probabilities (within ``tolerance``) on a batch and
    on a single image; otherwise the layer-by-layer graph is exported, and one line says so
    and why. ``verbose`` adds the exporter's or onnxruntime's error text (logged, and in the
    report as ``fused_error``) and lets the exporter's own warnings through. ``output`` appears
    only complete, and only if it did not exist or ``overwrite`` is true.
    """
    check_opset(opset)
    final = check_output(output, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    output = final.with_name(f".{final.name}.{os.getpid()}.partial.onnx")
    try:
        report = _export_checked(net, description, output, opset, check_batch, try_fused, tolerance, verbose)
        check_output(final, overwrite)  # not created meanwhile
        os.replace(output, final)
    finally:
        output.unlink(missing_ok=True)
    return {**report, "onnx": str(final)}


def _export_checked(
    net: torch.nn.Module, description: dict[str, Any], output: Path, opset: int, check_batch: int, try_fused: bool,
    tolerance: float, verbose: bool = False,
) -> dict[str, Any]:  # fmt: skip
    import onnx  # the export extra: only when exporting

    net = net.float().eval().to(memory_format=torch.contiguous_format)
    images = check_images(max(2, check_batch))
    fused = getattr(net, "fused", None)
    graph, why = "as trained", None  # why: (plain phrase, full error text) when the fused block is not kept
    if fused:
        if try_fused:
            try:
                _export(net, output, opset, verbose)
                why = _runs_the_same(output, net, images, tolerance)
            except Exception as err:  # the exporter raises many types; the fallback below follows
                why = "the exporter cannot trace CarlosNet's fused first block", _error_text(err)
        else:
            why = "CarlosNet's fused first block not tried (try_fused=false)", ""
        if why is not None:
            plain, error = why
            hint = " (verbose=true shows the error)" if error and not verbose else ""
            log.info("%s%s%s", FALLBACK, plain, hint)
            if error and verbose:
                log.info("the error of the fused first block's graph: %s", error)
            graph = f"layer by layer (fused=False, the same function): {plain}"
            net.fused = False
    if why is not None or not fused:
        _export(net, output, opset, verbose)
    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    written = {o.domain: o.version for o in model.opset_import}.get("")
    if written != opset:
        raise ValueError(f"opset={opset}: the exporter wrote opset {written} instead; nothing was written")
    meta = {**description, "exported_from": str(description.get("checkpoint")), "graph": graph, "opset": opset}
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    onnx.save(model, str(output))
    if fused is not None:
        net.fused = fused  # parity against the network as trained, fused block included
    report: dict[str, Any] = {"onnx": str(output), "opset": opset, "exporter": "torch.onnx.export(dynamo=True)",
                              "dynamic_batch": True, "graph": graph}  # fmt: skip
    if verbose and why is not None and why[1]:
        report["fused_error"] = why[1]
    if check_batch > 0:
        report["parity"] = check_parity(output, net, images[:check_batch])
    return report
