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


ORT_ERROR = "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running Gather node"


@pytest.fixture
def fused_graph_rejected(monkeypatch):
    """onnxruntime refuses the fused block's graph, as the installed one does; forced, so as not to hang on a version."""
    from handgestures.inference import export

    real, calls = export.check_parity, []

    def check_parity(path, net, images):
        calls.append(path)
        if len(calls) == 1:  # the first check is the fused graph's
            raise RuntimeError(ORT_ERROR)
        return real(path, net, images)

    monkeypatch.setattr(export, "check_parity", check_parity)


def export_cfg(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from handgestures import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("export", overrides=list(overrides))


@pytest.mark.parametrize("verbose", [False, True])
def test_the_fallback_is_one_plain_line_and_verbose_adds_the_error(tiny_run, tmp_path, fused_graph_rejected, capsys,
                                                                   verbose):  # fmt: skip
    from handgestures.inference.cli import run_export
    from handgestures.inference.export import FALLBACK

    out_file = tmp_path / "model.onnx"
    assert run_export(export_cfg(f"ckpt={tiny_run}", f"output={out_file}", f"verbose={str(verbose).lower()}")) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith("exporting ") and f"to {out_file} (ONNX opset 18" in lines[0]  # said before it starts
    plain = FALLBACK + "onnxruntime cannot run the graph of CarlosNet's fused first block"
    assert [line for line in lines if line.startswith(FALLBACK)] == [
        plain if verbose else plain + " (verbose=true shows the error)"
    ]
    report = json.loads(out)
    assert report["graph"] == f"layer by layer (fused=False, the same function): {plain.removeprefix(FALLBACK)}"
    if verbose:
        assert ORT_ERROR in err and report["fused_error"] == f"RuntimeError: {ORT_ERROR}"
    else:
        assert "INVALID_ARGUMENT" not in out + err and "fused_error" not in report
