"""Nothing lost, nothing read that was not sent: outputs say what they are, hostile inputs get
bounded work, failures are one message and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from conftest import write_fingers_folder
from helpers import ROOT
from omegaconf import OmegaConf
from PIL import Image, ImageFile

from handgestures.analysis.report import build_report
from handgestures.data.fingers import decode_png, load_fingers_folder
from handgestures.data.imagefile import MAX_BITS, MAX_PIXELS
from handgestures.data.scan import scan_folder
from handgestures.errors import CheckpointError
from handgestures.inference.cli import run_eval, run_export, run_predict
from handgestures.inference.predictor import Predictor, load_predictor, predict_files
from handgestures.inference.preprocess import decode, list_inputs
from handgestures.runfolder.checkpoints import resolve_checkpoint

# ---------------------------------------------------------------------------- helpers


def png_header(width: int, height: int, bit_depth: int = 16, colour: int = 0) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height``, with a few bytes of pixel data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def without_hanging(fn, fifos, seconds: float = 30.0):
    """``fn()``'s result; fails (after unblocking any reader of ``fifos``) if it takes over ``seconds``."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as err:  # re-raised in the test's thread
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:  # a reader blocked in open() returns once a writer comes and goes
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail(f"hung for over {seconds} s reading {fifos}")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def exit_code(runner, cfg: dict, capsys) -> tuple[int, str, str]:
    """(exit status, stderr, stdout) of a command's runner, which ends with SystemExit on an error."""
    try:
        code = runner(OmegaConf.create(cfg))
    except SystemExit as err:
        code = err.code
    captured = capsys.readouterr()
    return code or 0, captured.err, captured.out


def poisoned_checkpoint(tiny_run, tmp_path, value=float("nan")):
    """The tiny run's checkpoint with one weight set to ``value``; (path, the tensor's name)."""
    checkpoint = torch.load(resolve_checkpoint(tiny_run), map_location="cpu", weights_only=True)
    name = [k for k in checkpoint["state_dict"] if k.startswith("net.") and k.endswith("weight")][1]
    tensor = checkpoint["state_dict"][name]
    tensor[(0,) * tensor.dim()] = value
    path = tmp_path / "poisoned.ckpt"
    torch.save(checkpoint, path)
    return path, name


# ---------------------------------------------------------------------------- A. outputs say what they are


def test_export_refuses_an_opset_it_cannot_write_before_any_work(tmp_path, capsys):
    junk = tmp_path / "any.ckpt"  # loading it would fail with a message of its own
    junk.write_bytes(b"not a checkpoint")
    for opset in (5, 13, 99):
        out = tmp_path / f"m{opset}.onnx"
        cfg = {"ckpt": str(junk), "format": "onnx", "output": str(out), "opset": opset,
               "check_batch": 0, "try_fused": False, "overwrite": False}  # fmt: skip
        code, err, _ = exit_code(run_export, cfg, capsys)
        assert code != 0 and f"opset={opset}" in err and "supported" in err and not out.exists(), err
        assert "Traceback" not in err and err.count("\n") == 1


def test_export_writes_the_opset_it_reports_and_never_overwrites_unasked(tiny_run, tmp_path, capsys, monkeypatch):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "model.onnx"
    cfg = {"ckpt": str(tiny_run), "format": "onnx", "output": str(out), "opset": 17, "check_batch": 2,
           "try_fused": False, "overwrite": False}  # fmt: skip
    code, err, printed = exit_code(run_export, cfg, capsys)
    assert code == 0, err
    report = json.loads(printed)
    versions = {o.domain: o.version for o in onnx.load(str(out)).opset_import}
    assert versions[""] == 17 == report["opset"]
    before = out.read_bytes()
    code, err, _ = exit_code(run_export, cfg, capsys)
    assert code != 0 and str(out) in err and "overwrite=true" in err and out.read_bytes() == before
    model = onnx.load(str(out))  # the same file with a NaN weight: refused where every .onnx is loaded
    init = max(model.graph.initializer, key=lambda i: len(onnx.numpy_helper.to_array(i).ravel()))
    values = onnx.numpy_helper.to_array(init).copy()
    values.ravel()[0] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    onnx.save(model, str(tmp_path / "poisoned.onnx"))
    with pytest.raises(CheckpointError, match=rf"poisoned\.onnx.*{init.name}"):
        load_predictor(tmp_path / "poisoned.onnx")
    import handgestures.inference.export as export

    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: {"onnx": str(out), "opset": 17})
    code, err, _ = exit_code(run_export, {**cfg, "overwrite": True}, capsys)
    assert code == 0, err


def test_a_checkpoint_with_non_finite_weights_is_refused_everywhere(tiny_run, tmp_path, capsys):
    path, name = poisoned_checkpoint(tiny_run, tmp_path)
    with pytest.raises(CheckpointError, match=rf"poisoned\.ckpt.*{name}.*nan") as err:
        load_predictor(path)  # predict, eval and the demo load through it
    assert "non-finite" in str(err.value)
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(images / "a.png")
    commands = (
        (run_predict, {"ckpt": str(path), "inputs": str(images), "output": "text", "batch_size": 8, "threads": None}),
        (run_eval, {"ckpt": str(path), "data": {"root": None}, "output_dir": str(tmp_path / "eval"),
                    "batch_size": None}),
        (run_export, {"ckpt": str(path), "format": "onnx", "output": str(tmp_path / "x.onnx"), "opset": 18,
                      "check_batch": 0, "try_fused": False, "overwrite": False}),
    )  # fmt: skip
    for runner, cfg in commands:
        code, err, printed = exit_code(runner, cfg, capsys)
        assert code == 2 and name in err and "poisoned.ckpt" in err, (runner.__name__, err)
        assert "nan" not in printed.lower()
    assert not (tmp_path / "x.onnx").exists()
    try:
        import gradio  # noqa: F401
    except ImportError:
        return
    from handgestures.inference.cli import run_demo

    code, err, _ = exit_code(run_demo, {"ckpt": str(path), "examples": None, "host": "127.0.0.1", "port": None,
                                     "seed": 0}, capsys)  # fmt: skip
    assert code == 2 and name in err


class NaNModel(Predictor):
    kind = "test"
    precision = "32-true"

    def logits(self, x):
        out = torch.zeros(len(x), 6)
        out[0] = float("nan")
        return out


def test_a_non_finite_output_is_an_error_record_never_a_nan_probability(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((128, 128), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    records = list(predict_files(NaNModel({}, tmp_path), [str(tmp_path / "0.png"), str(tmp_path / "1.png")]))
    assert "non-finite" in records[0]["error"] and "probabilities" not in records[0]
    assert records[1]["fingers"] == 0 and all(np.isfinite(list(records[1]["probabilities"].values())))


# ---------------------------------------------------------------------------- B. bounded work


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails a test that decodes pixels of the bomb file."""
    load = ImageFile.ImageFile.load

    def guarded(self):
        if self.size[0] * self.size[1] > MAX_PIXELS:
            pytest.fail(f"decoded a {self.size} image")
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded)


def test_a_bomb_header_is_refused_before_decoding_in_predict_and_training(tmp_path, no_decoding):
    bomb = tmp_path / "bomb_3L.png"
    bomb.write_bytes(png_header(12000, 12000, 16))
    assert bomb.stat().st_size < 200
    start = time.perf_counter()
    decoded = decode(bomb)
    assert decoded.pixels is None and "12000x12000" in decoded.error and f"{MAX_PIXELS:,}" in decoded.error
    with pytest.raises(ValueError, match=rf"bomb_3L\.png.*too large.*{MAX_PIXELS:,}"):
        decode_png(bomb, 128)
    assert time.perf_counter() - start < 5
    root = write_fingers_folder(tmp_path / "data", per_stratum=1)
    (root / "bomb_3L.png").write_bytes(bomb.read_bytes())
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache", on_error="skip", report_dir=tmp_path / "run")
    assert "bomb_3L.png" not in data.names
    skipped = (tmp_path / "run" / "skipped.csv").read_text()
    assert "bomb_3L.png" in skipped and "too large" in skipped and f"{MAX_PIXELS:,}" in skipped


def test_deeper_than_sixteen_bits_is_refused_from_the_header(tmp_path):
    Image.fromarray(np.zeros((16, 16), np.int32), mode="I").save(tmp_path / "deep.tif")
    decoded = decode(tmp_path / "deep.tif")
    assert decoded.pixels is None and "32-bit" in decoded.error and f"{MAX_BITS} bits" in decoded.error


def test_sixteen_bit_images_are_scaled_without_a_float64_copy(tmp_path):
    side = 1024
    values = np.arange(side * side, dtype=np.uint32).reshape(side, side) % 65536
    Image.fromarray(values.astype(np.uint16)).save(tmp_path / "deep16.png")
    tracemalloc.start()
    try:
        decoded = decode(tmp_path / "deep16.png", size=side)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.error is None
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)  # the documented rounding
    assert np.array_equal(decoded.pixels, expected)
    # Pillow's own 2 MiB buffer, its bytes copy for numpy, the uint8 result and one block of rows: under what
    # a float64 copy of the whole image would take alone (8 MiB; the float64 path peaked at 24 MiB)
    assert peak < 8 * side * side, f"peak {peak / 2**20:.1f} MiB while scaling a 2 MiB 16-bit image"


def test_a_fifo_among_predict_inputs_is_reported_not_opened(tiny_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(folder / "a.png")
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    cfg = {"ckpt": str(tiny_run), "inputs": str(folder), "output": "json", "batch_size": 8, "threads": 2}
    code = without_hanging(lambda: run_predict(OmegaConf.create(cfg)), [fifo])
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (bad,) = [r for r in lines if r.get("file") == str(fifo)]
    assert "not a regular file" in bad["error"] and "FIFO" in bad["error"]
    assert lines[-1]["summary"]["images"] == 1 and lines[-1]["summary"]["failed"] == 1
    with pytest.raises(FileNotFoundError, match="FIFO"):
        list_inputs(fifo)


def test_a_fifo_in_a_training_folder_is_reported_not_opened(tmp_path):
    root = write_fingers_folder(tmp_path / "data", per_stratum=1)
    fifo = root / "pipe_2L.png"
    os.mkfifo(fifo)
    os.symlink(fifo, root / "link_2R.png")
    scan = without_hanging(lambda: scan_folder(root), [fifo])
    bad = dict(scan.bad)
    assert set(bad) == {"pipe_2L.png", "link_2R.png"} and len(scan.files) == 12
    assert all(r.startswith("not a regular file: a FIFO") for r in bad.values()), bad
    with pytest.raises(ValueError, match=r"pipe_2L\.png.*not a regular file"):
        without_hanging(lambda: decode_png(fifo, 128), [fifo])


# ---------------------------------------------------------------------------- C. one message, one exit code


def test_the_report_names_an_unreadable_metrics_json_and_reports_the_rest(tmp_path):
    from test_report import write_run

    runs = tmp_path / "runs"
    write_run(runs / "carlosnet-base-seed0", "carlosnet", "base", 0, test_acc=0.9)
    write_run(runs / "carlosnet-base-seed1", "carlosnet", "base", 1, test_acc=0.95)
    broken = runs / "carlosnet-base-seed1" / "metrics.json"
    broken.write_text(broken.read_text()[:40])  # truncated mid-write
    report = build_report(runs, tmp_path / "out").read_text()
    assert "carlosnet-base-seed1" in report and "metrics.json" in report and "unreadable" in report
    assert "n=1" in report and "0.9000" in report


def test_eval_writes_its_bad_files_list_in_its_own_folder(tiny_run, tmp_path, capsys):
    folder = write_fingers_folder(tmp_path / "other", per_stratum=1)
    (folder / "text_3L.png").write_text("not an image")
    out = tmp_path / "eval"
    cfg = {"ckpt": str(tiny_run), "data": {"root": str(folder)}, "output_dir": str(out), "batch_size": None}
    code, err, _ = exit_code(run_eval, cfg, capsys)
    assert code == 2 and "text_3L.png" in err
    assert (out / "bad_files.csv").is_file() and "text_3L.png" in (out / "bad_files.csv").read_text()
    assert not (tiny_run / "bad_files.csv").exists()


@pytest.mark.parametrize(
    "runner,key,value",
    [(run_predict, "batch_size", 0), (run_predict, "batch_size", -3), (run_predict, "threads", 0),
     (run_predict, "batch_size", "many"), (run_eval, "batch_size", 0), (run_eval, "batch_size", -3),
     (run_export, "check_batch", -1), (run_export, "opset", "latest")],
)  # fmt: skip
def test_bad_numbers_are_refused_before_any_work(runner, key, value, tmp_path, capsys):
    base = {
        run_predict: {"inputs": str(tmp_path), "output": "text", "batch_size": 8, "threads": None},
        run_eval: {"data": {"root": None}, "output_dir": str(tmp_path), "batch_size": None},
        run_export: {"format": "onnx", "output": None, "opset": 18, "check_batch": 8, "try_fused": True,
                     "overwrite": False},
    }[runner]  # fmt: skip
    cfg = {**base, "ckpt": str(tmp_path / "missing.ckpt"), key: value}  # a missing checkpoint: checked after
    code, err, _ = exit_code(runner, cfg, capsys)
    assert code != 0 and f"{key}={value}" in err and "expected" in err, err
    assert "missing.ckpt" not in err and "Traceback" not in err and err.count("\n") == 1


def test_the_commands_refuse_bad_numbers_and_skip_a_fifo_without_hanging(tiny_run, tmp_path):
    """The real commands, in processes of their own: one error line, an exit status, no traceback."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def command(*args):
        return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=env)  # fmt: skip

    bad = command(str(ROOT / "predict.py"), f"ckpt={tiny_run}", f"inputs={folder}", "batch_size=0")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: batch_size=0: expected an integer >= 1 (images decoded and predicted together)"
    ), bad.stderr
    run = command(str(ROOT / "predict.py"), f"ckpt={tiny_run}", f"inputs={folder}", "hydra.run.dir=out")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"{folder / 'pipe.png'}: ERROR refused: not a regular file: a FIFO" in run.stdout
    assert "1 images predicted, 1 failed" in run.stdout
