"""ONNX export: onnxruntime against PyTorch on a batch and on the whole built-in test split."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from handgestures.inference.cli import run_eval, run_predict  # noqa: E402
from handgestures.inference.evaluate import build_sets, datamodule_for  # noqa: E402
from handgestures.inference.export import export_onnx  # noqa: E402
from handgestures.inference.predictor import OnnxPredictor, load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    report = export_onnx(tiny_run, out, check_batch=16)  # tries the fused block first
    return out, report


def test_export_matches_pytorch_on_a_batch_and_the_whole_test_split(tiny_run, exported):
    path, report = exported
    assert report["opset"] == 18 and report["dynamic_batch"] and report["exporter"].endswith("(dynamo=True)")
    assert report["parity"]["images"] == 16
    assert report["parity"]["max_prob_diff"] <= 1e-5 and report["parity"]["argmax_agreement"] == 1.0
    onnx_model = OnnxPredictor(path)
    torch_model = load_predictor(tiny_run, precision="32-true")  # fp32, fused block as trained
    assert torch_model.module.net.fused  # compared with the network as it runs in PyTorch
    dm = datamodule_for(torch_model.description, None)
    test = build_sets(dm, "test")["test"]
    x = test.images.float() / 255
    expected, got = torch_model.probabilities(x), onnx_model.probabilities(x)
    assert len(x) == 36
    assert float((got - expected).abs().max()) <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))
    for n in (1, 5):  # the batch axis is dynamic
        assert onnx_model.probabilities(x[:n]).shape == (n, 6)
    assert onnx_model.description["split_sizes"] == torch_model.description["split_sizes"]
    assert "layer by layer" in onnx_model.description["graph"] or onnx_model.description["graph"] == "as trained"


def test_predict_and_eval_accept_the_onnx_file(tiny_run, exported, tmp_path, capsys):
    path, _ = exported
    images = tmp_path / "in"
    images.mkdir()
    from PIL import Image

    from handgestures.data.hands import generate_hands

    hands, _, _ = generate_hands(12, seed=4)
    for i in range(3):
        Image.fromarray(hands[i, 0].numpy()).save(images / f"{i}.png")
    cfg = {"ckpt": str(path), "inputs": str(images), "output": "json", "batch_size": 2, "output_dir": str(tmp_path)}
    assert run_predict(OmegaConf.create(cfg)) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()][:-1]
    expected = load_predictor(tiny_run, precision="32-true").probabilities(hands[:3].float() / 255)
    for r, e in zip(records, expected, strict=True):
        assert list(r["probabilities"].values()) == pytest.approx(e.tolist(), abs=1e-5)
    assert run_eval(OmegaConf.create({"ckpt": str(path), "data": {"root": None}, "output_dir": str(tmp_path)})) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["runtime"] == "onnx" and result["split"] == "test" and result["sets"]["test"]["images"] == 36
