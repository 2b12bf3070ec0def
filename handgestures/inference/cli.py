"""The commands after training: predict, eval, export, demo (Hydra ``key=value`` arguments).

Root scripts (``python predict.py ...``) and console scripts (``handgestures-predict ...``)
both call the ``run_*`` functions here with the composed config (conf/predict.yaml,
conf/eval.yaml, conf/export.yaml, conf/demo.yaml). A bad argument, checkpoint or input ends
the command with a one-line error and a non-zero exit status.
"""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import hydra
from omegaconf import DictConfig

from handgestures import CONF_DIR, say_loading
from handgestures.errors import EXIT_ERROR, EXIT_USAGE, CheckpointError

CONF = str(CONF_DIR)
OUTPUTS = ("text", "json", "csv")
EXIT_FAILED_INPUTS = EXIT_ERROR  # predict: some inputs could not be read
EXPORT_FORMATS = {
    "onnx": "onnx: one .onnx file",
    "hf": "hf: a model folder, model.safetensors + config.json + README.md",
}


@contextlib.contextmanager
def console_messages() -> Iterator[None]:
    """The package's log lines (INFO and up) on stderr while a command runs, as plain lines.

    These commands leave logging unconfigured (conf/*.yaml: ``hydra/job_logging: none``) so that
    stdout holds only their results; what they do that takes seconds (decoding images, exporting)
    is still said, on stderr, before it starts.
    """
    logger = logging.getLogger("handgestures")
    handler, level = logging.StreamHandler(sys.stderr), logger.level  # this command's stderr
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _required(cfg: DictConfig, key: str, what: str) -> str:
    value = cfg.get(key)
    if value in (None, "", "???"):
        fail(f"{key}= is required: {what}")
    return str(value)


def _integer(cfg: DictConfig, key: str, minimum: int, nullable: bool = False, what: str = "") -> int | None:
    """``cfg[key]`` as an int >= ``minimum`` (or None when ``nullable``); else one error naming key and value."""
    value = cfg.get(key)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(f"{key}={value}: expected an integer >= {minimum}{' or null' if nullable else ''}{what}")
    return value


def run_predict(cfg: DictConfig) -> int:
    """Predictions for ``inputs`` (an image or a folder); returns the exit status (1 if any failed)."""
    ckpt = _required(cfg, "ckpt", "a checkpoint, a run folder, a model folder or an .onnx file")
    inputs = _required(cfg, "inputs", "an image file or a folder of images")
    output = str(cfg.get("output", "text"))
    if output not in OUTPUTS:
        fail(f"output={output!r}: expected one of {list(OUTPUTS)}")
    batch_size = _integer(cfg, "batch_size", 1, what=" (images decoded and predicted together)")
    threads = _integer(cfg, "threads", 1, nullable=True, what=" (decoding threads; null = min(8, CPU cores))")
    say_loading("predict", "PyTorch and the model")
    from handgestures.inference.predictor import (  # torch/onnx/gradio after the arguments are checked
        PredictionRun,
        load_predictor,
        predict_files,
    )
    from handgestures.inference.preprocess import SUMMARY, list_inputs  # torch, after the arguments are checked

    try:
        predictor = load_predictor(ckpt, precision=cfg.get("precision"))
        paths, others = list_inputs(inputs)
    except (CheckpointError, FileNotFoundError, ValueError, ImportError) as err:
        fail(str(err))
    print(f"model: {predictor.source} ({predictor.kind}, {predictor.precision})", file=sys.stderr)
    print(SUMMARY, file=sys.stderr)
    for other in others:
        print(f"skipped (not an image file name): {other}", file=sys.stderr)
    if not paths:
        fail(f"no image files under {inputs!r}")
    run = PredictionRun()
    records = predict_files(predictor, paths, batch_size=batch_size, threads=threads, run=run)
    csv_file = writer = None
    if output == "csv":
        csv_path = Path(str(cfg.output_dir)) / "predictions.csv"
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        csv_file = csv_path.open("w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(["file", "fingers", "probability", *(f"p{c}" for c in predictor.class_names), "error"])
    try:
        for r in records:
            for notice in r.get("notices", []):
                print(f"notice: {r['file']}: {notice}", file=sys.stderr)
            if output == "json":
                print(json.dumps({k: v for k, v in r.items() if k != "notices" or v}))
            elif output == "csv":
                probs = list(r["probabilities"].values()) if "error" not in r else [""] * len(predictor.class_names)
                writer.writerow([r["file"], r.get("fingers", ""), r.get("probability", ""), *probs, r.get("error", "")])
            if "error" in r:
                if output != "json":
                    print(f"{r['file']}: ERROR {r['error']}")
            elif output == "text":
                probs = " ".join(f"{v:.4f}" for v in r["probabilities"].values())
                print(f"{r['file']}: {r['fingers']} fingers (p={r['probability']:.4f})  p0..p5: {probs}")
    finally:
        if csv_file is not None:
            csv_file.close()
    if output == "json":
        print(json.dumps({"summary": {"images": run.images, "failed": run.failed, "resized": run.resized,
                                      "seconds": round(run.seconds, 3), "predicted": run.counts}}))  # fmt: skip
    else:
        print(run.summary() + (f"; wrote {csv_file.name}" if csv_file is not None else ""))
    return EXIT_FAILED_INPUTS if run.failed else 0


def run_eval(cfg: DictConfig) -> int:
    """eval.json and confusion PNGs in ``output_dir`` for ``ckpt`` on ``data.root`` / ``split``."""
    ckpt = _required(cfg, "ckpt", "a checkpoint, a run folder, a model folder or an .onnx file")
    root = (cfg.get("data") or {}).get("root")
    batch_size = _integer(cfg, "batch_size", 1, nullable=True, what=" (null = the run's eval_batch_size)")
    say_loading("eval", "PyTorch and the model")
    from handgestures.inference.evaluate import evaluate as run  # torch/onnx/gradio after the arguments are checked
    from handgestures.inference.evaluate import format_result, write_evaluation  # (as above)

    try:
        with console_messages():  # reading or decoding the images takes seconds
            predictor = load(ckpt, cfg.get("precision"))
            result = run(predictor, root=str(root) if root else None, split=cfg.get("split"), batch_size=batch_size,
                         report_dir=str(cfg.output_dir))  # fmt: skip
    except (CheckpointError, FileNotFoundError, ValueError, ImportError) as err:
        fail(str(err))
    print(format_result(result))
    written = write_evaluation(result, str(cfg.output_dir))
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def load(ckpt: str, precision):
    from handgestures.inference.predictor import load_predictor  # torch/onnx/gradio after the arguments are checked

    return load_predictor(ckpt, precision=precision)


def _flag(cfg: DictConfig, key: str) -> bool:
    """``cfg[key]`` (false when absent) as a bool; else one error naming key and value."""
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        fail(f"{key}={value}: expected true or false")
    return value


def run_export(cfg: DictConfig) -> int:
    """``format=onnx``: an ONNX file checked in onnxruntime; ``format=hf``: a model folder checked bit for bit."""
    ckpt = _required(cfg, "ckpt", "a checkpoint, a run folder or a model folder")
    fmt = str(cfg.get("format"))
    if fmt not in EXPORT_FORMATS:
        fail(f"format={fmt!r}: expected one of {list(EXPORT_FORMATS)} ({'; '.join(EXPORT_FORMATS.values())})")
    check_batch = _integer(cfg, "check_batch", 0, what=" (built-in hands the export is checked on; 0: none)")
    overwrite, verbose = _flag(cfg, "overwrite"), _flag(cfg, "verbose")
    say_loading("export", "PyTorch and the checkpoint")
    from handgestures.inference import export, hub  # torch/onnx/gradio after the arguments are checked
    from handgestures.runfolder.checkpoints import resolve_checkpoint  # torch, after the arguments are checked

    try:
        with console_messages():  # "exporting ...", and the graph exported when not the fused one
            if fmt == "hf":
                file = resolve_checkpoint(ckpt)
                out = export.check_output(cfg.output if cfg.get("output") else hub.default_output(file), overwrite)
                report = hub.export_hf(file, out, check_batch=check_batch, overwrite=overwrite)
            else:
                opset = export.check_opset(cfg.get("opset"))
                file = resolve_checkpoint(ckpt)
                out = export.check_output(cfg.output if cfg.get("output") else file.with_suffix(".onnx"), overwrite)
                report = export.export_onnx(file, out, opset=opset, check_batch=check_batch,
                                            try_fused=bool(cfg.try_fused), overwrite=overwrite,
                                            verbose=verbose)  # fmt: skip
    except (CheckpointError, FileNotFoundError, ValueError, ImportError) as err:
        fail(str(err))
    print(json.dumps(report, indent=2))
    return 0


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_demo(cfg: DictConfig) -> int:
    ckpt = _required(cfg, "ckpt", "a checkpoint, a run folder, a model folder or an .onnx file")
    host, remote = str(cfg.get("host") or "127.0.0.1"), _flag(cfg, "allow_remote")
    if not loopback(host):
        if not remote:
            fail(f"host={host} would publish the demo (and the model) to every machine that can reach this one; "
                 "keep host=127.0.0.1, or add allow_remote=true to do it on purpose")  # fmt: skip
        print(f"warning: host={host} with allow_remote=true: the demo is reachable from the network, "
              "without a password; anyone who reaches it can send images to the model", file=sys.stderr)  # fmt: skip
    print(f"starting the demo of {ckpt}: loading the model and gradio (several seconds) ...", file=sys.stderr,
          flush=True)  # fmt: skip
    from handgestures.inference.demo import launch  # torch/onnx/gradio after the arguments are checked

    try:
        launch(ckpt, examples=cfg.get("examples"), host=host, port=cfg.get("port"), seed=cfg.get("seed"))
    except (CheckpointError, FileNotFoundError, ValueError, ImportError) as err:
        fail(str(err))
    return 0


def _console(config_name: str, runner):
    @hydra.main(version_base="1.3", config_path=CONF, config_name=config_name)
    def main(cfg: DictConfig) -> None:
        code = runner(cfg)
        if code:
            raise SystemExit(code)

    return main


predict = _console("predict", run_predict)
evaluate = _console("eval", run_eval)
export = _console("export", run_export)
demo = _console("demo", run_demo)
