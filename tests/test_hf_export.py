"""The hub-ready model folder (``export.py format=hf``): its files, an exact round trip, every command reading it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image

pytest.importorskip("safetensors")

import handgestures  # noqa: E402
from handgestures.data.hands import generate_hands  # noqa: E402
from handgestures.errors import CheckpointError  # noqa: E402
from handgestures.inference.cli import run_eval, run_export, run_predict  # noqa: E402
from handgestures.inference.demo import DemoModel  # noqa: E402
from handgestures.inference.hub import export_hf  # noqa: E402
from handgestures.inference.predictor import Predictor, load_predictor  # noqa: E402
from handgestures.models import build_net, load_pretrained, save_pretrained  # noqa: E402
from handgestures.models.pretrained import FORMAT, FORMAT_VERSION  # noqa: E402

FILES = ["README.md", "config.json", "model.safetensors"]


@pytest.fixture(scope="module")
def folder(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "carlosnet-base"
    return out, export_hf(tiny_run, out, check_batch=16)


def hands(n: int, seed: int = 5) -> torch.Tensor:
    images, _, _ = generate_hands(12 * -(-n // 12), seed=seed)
    return images[:n].float() / 255


def test_the_folder_holds_weights_config_and_card(tiny_run, folder):
    path, report = folder
    assert sorted(p.name for p in path.iterdir()) == FILES == report["files"]
    assert (path / "model.safetensors").stat().st_mode == (path / "config.json").stat().st_mode  # not 0600
    assert report["round_trip"] == {"images": 16, "precision": "32-true", "bit_identical": True, "max_abs_diff": 0.0}
    checkpoint = load_predictor(tiny_run)
    recorded = checkpoint.description
    config = json.loads((path / "config.json").read_text())
    assert (config["format"], config["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert config["architecture"] == "CarlosNet" and config["architectures"] == ["CarlosNet"]
    assert config["net_spec"] == recorded["net_spec"] == {"_target_": "handgestures.models.CarlosNet",
                                                           "num_classes": 6, "fused": True}  # fmt: skip
    assert config["num_classes"] == 6 and config["class_names"] == [str(i) for i in range(6)]
    assert config["id2label"] == {str(i): str(i) for i in range(6)} and config["label2id"]["5"] == 5
    assert (config["image_size"], config["channels"], config["rescale_factor"], config["normalize"]) == (
        [128, 128], 1, 1 / 255, False)  # fmt: skip
    assert config["preprocessing"] == recorded["preprocessing"] and config["channels_last"] is True
    assert config["training"] == {
        "model": "carlosnet", "data": "base", "seed": 0, "precision": recorded["precision"], "epochs": recorded["epochs"],
        "source": "built-in hands", "split": recorded["split"], "exported_from": checkpoint.source.name,
    }  # fmt: skip
    assert config["version"] == config["exported_with"] == handgestures.__version__
    assert config["description"] == {k: v for k, v in recorded.items() if k not in ("net_spec", "checkpoint")}
    # the weights: a JSON header and raw tensors, the network's own names, nothing pickled
    raw = (path / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header.pop("__metadata__") == {"format": "pt", "handgestures": FORMAT, "architecture": "CarlosNet"}
    state = checkpoint.module.net.state_dict()
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        k: ("F32", list(t.shape)) for k, t in state.items()}  # fmt: skip


def test_the_card_is_the_runs_model_card_under_hub_front_matter(tiny_run, folder):
    path, _ = folder
    text = (path / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "pytorch" and meta["pipeline_tag"] == "image-classification"
    assert {"carlosnet", "safetensors", "image-classification"} <= set(meta["tags"]) and meta["metrics"] == ["accuracy"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())["metrics"]
    (index,) = meta["model-index"]
    assert index["name"] == "carlosnet-base-seed0"
    (result,) = index["results"]
    assert result["dataset"]["split"] == "test" and result["dataset"]["name"].startswith("built-in")
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [("accuracy", metrics["test/acc"]),
                                                                     ("accuracy", metrics["test_aug/acc"])]  # fmt: skip
    card = (tiny_run / "MODEL_CARD.md").read_text()
    assert card.rstrip("\n") in text  # the run's card, filled
    assert "Predictor.from_pretrained" in text and "model.safetensors" in text
    hub = pytest.importorskip("huggingface_hub")  # the hub's own reader, where installed
    data = hub.ModelCard.load(path / "README.md").data
    assert data.library_name == "pytorch" and data.eval_results[0].metric_value == metrics["test/acc"]


def test_from_pretrained_gives_the_checkpoints_logits_bit_for_bit(tiny_run, folder):
    path, _ = folder
    x = hands(40)
    checkpoint = load_predictor(tiny_run, precision="32-true")
    loaded = Predictor.from_pretrained(path, precision="32-true")
    assert (loaded.kind, loaded.source, loaded.class_names) == ("pytorch", path, checkpoint.class_names)
    assert torch.equal(loaded.logits(x), checkpoint.logits(x))
    layout = [(p.is_contiguous(), p.stride()) for p in checkpoint.module.parameters()]  # the same kernels run
    assert loaded.channels_last == checkpoint.channels_last and [(p.is_contiguous(), p.stride()) for p in
                                                                 loaded.module.parameters()] == layout  # fmt: skip
    assert torch.equal(loaded.logits(x[:1]), checkpoint.logits(x[:1]))
    as_run = Predictor.from_pretrained(path)  # the run's precision, as predict and eval use it
    assert as_run.precision == load_predictor(tiny_run).precision
    assert torch.equal(as_run.logits(x), load_predictor(tiny_run).logits(x))
    net, config = load_pretrained(path)  # the network alone
    assert type(net).__name__ == config["architecture"] and not net.training
    for name, tensor in checkpoint.module.net.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name
    from handgestures.training.module import HandGestureClassifier

    module = HandGestureClassifier.from_pretrained(path)  # the classifier itself, for evaluation or fine-tuning
    assert isinstance(module, HandGestureClassifier) and not module.training
    assert module.hparams.description == checkpoint.module.hparams.description
    with torch.no_grad():
        assert torch.equal(module(x), checkpoint.module(x))  # fp32 forward of the same weights and layout


@pytest.mark.parametrize("spec", [{"_target_": "handgestures.models.CarlosNet", "fused": False},
                                  {"_target_": "handgestures.models.IvanNet", "num_classes": 4}])  # fmt: skip
def test_every_network_survives_the_folder_exactly(spec, tmp_path):
    torch.manual_seed(3)
    net = build_net(spec).eval()
    n = spec.get("num_classes", 6)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "net_spec": spec, "num_classes": n,
              "class_names": [str(i) for i in range(n)], "image_size": [128, 128], "channels": 1,
              "channels_last": False, "description": {}}  # fmt: skip
    save_pretrained(net, config, tmp_path)
    loaded, read = load_pretrained(tmp_path)
    x = hands(3)
    with torch.inference_mode():
        assert torch.equal(loaded(x), net(x))
    assert read == config


def write_images(folder, n: int = 5):
    folder.mkdir()
    for i, image in enumerate(hands(n, seed=11)):
        Image.fromarray((image[0] * 255).round().to(torch.uint8).numpy()).save(folder / f"{i}.png")
    return folder


def predictions(ckpt, images, tmp_path, capsys) -> list[dict]:
    cfg = {"ckpt": str(ckpt), "inputs": str(images), "output": "json", "batch_size": 2, "output_dir": str(tmp_path)}
    assert run_predict(OmegaConf.create(cfg)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def evaluation(ckpt, out) -> dict:
    assert run_eval(OmegaConf.create({"ckpt": str(ckpt), "data": {"root": None}, "output_dir": str(out)})) == 0
    return json.loads((out / "eval.json").read_text())


def test_predict_and_eval_on_the_folder_equal_the_checkpoints(tiny_run, folder, tmp_path, capsys):
    path, _ = folder
    images = write_images(tmp_path / "in")
    from_folder, from_run = (predictions(c, images, tmp_path, capsys) for c in (path, tiny_run))
    assert len(from_folder) == 6 and from_folder[:-1] == from_run[:-1]  # every record, probabilities included
    assert from_folder[-1]["summary"]["predicted"] == from_run[-1]["summary"]["predicted"]
    folder_eval, run_eval_ = evaluation(path, tmp_path / "a"), evaluation(tiny_run, tmp_path / "b")
    assert folder_eval["model"] == str(path) and folder_eval["runtime"] == "pytorch"
    assert folder_eval["sets"] == run_eval_["sets"] and set(folder_eval["sets"]) == {"test", "test_aug"}
    recorded = json.loads((tiny_run / "metrics.json").read_text())["metrics"]
    assert folder_eval["sets"]["test"]["accuracy"] == recorded["test/acc"]  # the run's own record, exactly


def test_the_demo_loads_the_folder(tiny_run, folder, tmp_path):
    path, _ = folder
    image = write_images(tmp_path / "in", 1) / "0.png"
    plain, augmented, plain_probs, text = DemoModel(load_predictor(str(path)), seed=4).answer(str(image))
    expected = DemoModel(load_predictor(str(tiny_run)), seed=4).answer(str(image))
    assert (plain, plain_probs, text) == (expected[0], expected[2], expected[3])
    assert (augmented == expected[1]).all()
    gr = pytest.importorskip("gradio")
    from handgestures.inference.demo import build_demo

    page, _ = build_demo(str(path))  # the page, not served
    (title,) = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown) and b.value]
    assert "CarlosNet (base training, seed 0)" in title and f"Model `{path.name}` (pytorch" in title


def test_export_command_writes_beside_the_checkpoint_and_replaces_only_a_model_folder(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = {"ckpt": str(run), "format": "hf", "output": None, "check_batch": 4, "overwrite": False}
    assert run_export(OmegaConf.create(cfg)) == 0
    report = json.loads(capsys.readouterr().out)
    checkpoint = load_predictor(run).source
    assert (
        report["folder"] == str(checkpoint.with_name(checkpoint.stem + "-hf")) and report["round_trip"]["bit_identical"]
    )
    with pytest.raises(SystemExit):
        run_export(OmegaConf.create(cfg))  # exists: refused
    assert "exists: pass overwrite=true" in capsys.readouterr().err
    assert run_export(OmegaConf.create({**cfg, "overwrite": True})) == 0
    assert sorted(p.name for p in (checkpoint.with_name(checkpoint.stem + "-hf")).iterdir()) == FILES
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit):
        run_export(OmegaConf.create({**cfg, "output": str(other), "overwrite": True}))
    assert "is not a model folder" in capsys.readouterr().err and (other / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".*partial*")) and not list(other.parent.glob(".*.old"))
    with pytest.raises(SystemExit):
        run_export(OmegaConf.create({**cfg, "format": "tflite"}))
    assert "format='tflite': expected one of ['onnx', 'hf']" in capsys.readouterr().err


def _config(folder, change):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _weights(folder, change):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


DAMAGES = {
    "no config": ("config.json", lambda f: (f / "config.json").unlink(), "has no config.json: expected config.json and model.safetensors"),
    "no weights": ("model.safetensors", lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
    "config not JSON": ("config.json", lambda f: (f / "config.json").write_text('{"format": '), "is not valid JSON"),
    "another config": ("config.json", lambda f: (f / "config.json").write_text('{"model_type": "bert"}'),
                       "is not a handgestures model config"),
    "no net_spec": ("config.json", lambda f: _config(f, lambda c: c.pop("net_spec")), "'net_spec' must be a dict"),
    "foreign class": ("config.json", lambda f: _config(f, lambda c: c["net_spec"].update(_target_="os.system")),
                      "builds no network"),
    "class count": ("config.json", lambda f: _config(f, lambda c: c.update(num_classes=5)), "class_names must be 5"),
    "newer format": ("config.json", lambda f: _config(f, lambda c: c.update(format_version=99)), "format_version 99"),
    "weights not safetensors": ("model.safetensors", lambda f: (f / "model.safetensors").write_bytes(b"\x80\x04junk"),
                                "is not a readable safetensors file"),
    "wrong shape": ("model.safetensors", lambda f: _weights(f, lambda s: s.update({"classifier.1.weight": torch.zeros(5, 144)})),
                    "tensor 'classifier.1.weight' is torch.float32 of shape [5, 144], but CarlosNet"),
    "wrong dtype": ("model.safetensors", lambda f: _weights(f, lambda s: s.update({"classifier.1.bias": s["classifier.1.bias"].half()})),
                    "tensor 'classifier.1.bias' is torch.float16"),
    "missing tensor": ("model.safetensors", lambda f: _weights(f, lambda s: s.pop("classifier.1.bias")),
                       "missing ['classifier.1.bias']"),
    "non-finite": ("model.safetensors", lambda f: _weights(f, lambda s: s["features.0.bias"].fill_(float("nan"))),
                   "has non-finite weights: tensor 'features.0.bias'"),
}  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_folder_is_refused_naming_the_file(folder, tmp_path, damage, capsys):
    path, _ = folder
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    name, harm, message = DAMAGES[damage]
    harm(copy)
    with pytest.raises(CheckpointError) as err:
        Predictor.from_pretrained(copy)
    assert message in str(err.value) and str(copy / name if "has no" not in message else copy) in str(err.value)
    cfg = {"ckpt": str(copy), "inputs": str(tmp_path), "output": "text", "batch_size": 2, "output_dir": str(tmp_path)}
    with pytest.raises(SystemExit) as code:
        run_predict(OmegaConf.create(cfg))
    assert code.value.code == 2 and message in capsys.readouterr().err


def test_a_folder_without_either_file_is_not_a_model_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is not a model folder: expected a folder with config.json and model"):
        Predictor.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="nor is it a model folder: no config.json or model.safetensors"):
        load_predictor(tmp_path)
