"""Checkpoints that describe themselves, predict, eval and the model card, on a tiny trained run."""

from __future__ import annotations

import json
import os
import shlex
import shutil

import numpy as np
import pytest
import torch
from conftest import write_fingers_folder
from helpers import compose_train
from omegaconf import OmegaConf
from PIL import Image

from handgestures.data.fingers import decode_png
from handgestures.errors import CheckpointError
from handgestures.inference.cli import run_eval, run_predict
from handgestures.inference.evaluate import evaluate
from handgestures.inference.predictor import load_predictor
from handgestures.inference.preprocess import decode, to_tensor
from handgestures.models import build_net
from handgestures.runfolder.checkpoints import resolve_checkpoint
from handgestures.runtime import cpu_model, native_bf16
from handgestures.training.checkpoint import load_module
from handgestures.training.module import HandGestureClassifier


def best_checkpoint(run):
    return str(run / json.loads((run / "metrics.json").read_text())["best_checkpoint"])  # relative to the run


def test_checkpoint_describes_its_run_and_loads_with_no_other_argument(tiny_run):
    path = best_checkpoint(tiny_run)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    hp = raw["hyper_parameters"]
    config = OmegaConf.load(tiny_run / "config.yaml")
    assert hp["net_spec"] == OmegaConf.to_container(config.model)
    d = hp["description"]
    assert d["class_names"] == [str(i) for i in range(6)]
    assert d["preprocessing"]["image_size"] == [128, 128] and d["preprocessing"]["grey_levels"] == 256
    assert (d["seed"], d["epochs"], d["precision"]) == (config.seed, config.epochs, config.trainer.precision)
    assert d["source"] == "built-in hands" and d["data"]["builtin_size"] == 240
    assert d["split_sizes"] == {"train": 168, "val": 36, "test": 36}
    import handgestures

    assert d["version"] == handgestures.__version__

    module = HandGestureClassifier.load_from_checkpoint(path)
    assert type(module.net).__name__ == config.model._target_.rsplit(".", 1)[-1]
    for key, value in raw["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value), key


def test_run_folder_gives_its_best_checkpoint_even_when_moved(tiny_run, tmp_path):
    assert resolve_checkpoint(tiny_run) == resolve_checkpoint(best_checkpoint(tiny_run))
    moved = tmp_path / "moved"
    shutil.copytree(tiny_run, moved)
    shutil.rmtree(tiny_run / "never-there", ignore_errors=True)
    best_name = os.path.basename(best_checkpoint(tiny_run))
    os.rename(tiny_run, tmp_path / "gone")  # the recorded absolute path no longer exists
    try:
        assert resolve_checkpoint(moved) == moved / "checkpoints" / best_name
    finally:
        os.rename(tmp_path / "gone", tiny_run)
    # without metrics.json: the highest validation accuracy in the names, then last.ckpt
    bare = tmp_path / "bare" / "checkpoints"
    bare.mkdir(parents=True)
    for name in ("best-epoch000-val_acc0.5000.ckpt", "best-epoch001-val_acc0.7500.ckpt", "last.ckpt"):
        (bare / name).write_bytes(b"")
    assert resolve_checkpoint(bare.parent).name == "best-epoch001-val_acc0.7500.ckpt"
    for name in ("best-epoch000-val_acc0.5000.ckpt", "best-epoch001-val_acc0.7500.ckpt"):
        (bare / name).unlink()
    assert resolve_checkpoint(bare.parent).name == "last.ckpt"
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        resolve_checkpoint(tmp_path)


class RunsCode:
    """Unpickling this calls os.mkdir(marker): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_checkpoint_that_would_run_code_runs_nothing_and_is_refused(tmp_path, capsys):
    marker = tmp_path / "code-was-run"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": RunsCode(marker)}}, evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_module(evil)
    with pytest.raises(Exception, match="Weights only load failed"):  # torch's weights_only default
        HandGestureClassifier.load_from_checkpoint(evil)
    for runner, cfg in ((run_predict, {"ckpt": str(evil), "inputs": str(tmp_path), "output": "text", "batch_size": 8}),
                        (run_eval, {"ckpt": str(evil), "data": {"root": None}, "output_dir": str(tmp_path)})):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            runner(OmegaConf.create(cfg))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "refusing to load" in err and str(evil) in err
    assert not marker.exists()


def test_networks_are_built_only_from_handgestures_models():
    with pytest.raises(CheckpointError, match="not allowed"):
        build_net({"_target_": "os.system", "command": "echo hi"})
    with pytest.raises(CheckpointError, match="not allowed"):
        build_net({"_target_": "handgestures_evil.models.X"})
    assert sum(p.numel() for p in build_net({"_target_": "handgestures.models.CarlosNet"}).parameters()) > 0


def write_inputs(folder, grey: np.ndarray):
    """The same hand as an 8-bit PNG, a 16-bit PNG, an RGB image (colours whose luma is the hand),
    a 200x150 copy, plus a corrupt PNG and a text file."""
    folder.mkdir()
    Image.fromarray(grey).save(folder / "a_grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "b_sixteen.png")
    rgb = np.stack([grey, grey, grey], axis=-1)  # luma of (v, v, v) is v
    Image.fromarray(rgb).save(folder / "c_rgb.png")
    Image.fromarray(grey).resize((200, 150)).save(folder / "d_large.png")
    (folder / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")


def hand(tiny_run) -> np.ndarray:
    from handgestures.data.hands import generate_hands

    images, _, _ = generate_hands(12, seed=3)
    return images[5, 0].numpy()


def test_predict_reads_any_image_reports_bad_files_and_exits_1(tiny_run, tmp_path, capsys):
    grey = hand(tiny_run)
    write_inputs(tmp_path / "in", grey)
    cfg = OmegaConf.create({"ckpt": str(tiny_run), "inputs": str(tmp_path / "in"), "output": "json", "batch_size": 3,
                            "threads": 2, "output_dir": str(tmp_path / "out")})  # fmt: skip
    assert run_predict(cfg) == 1
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [os.path.basename(r["file"]) for r in records] == ["a_grey.png", "b_sixteen.png", "c_rgb.png", "d_large.png",
                                                              "e_broken.png"]  # fmt: skip
    assert "cannot read image" in records[4]["error"]
    assert (summary["images"], summary["failed"], summary["resized"]) == (4, 1, 1)
    assert "notes.txt" in err and "resized from 200x150 to 128x128 (bilinear)" in err
    # the model's own answer on the training reader's array, computed apart
    predictor = load_predictor(tiny_run)
    pixels = decode_png(tmp_path / "in" / "a_grey.png", 128)
    expected = predictor.probabilities(torch.from_numpy(pixels)[None, None].float() / 255)[0]
    for r in records[:3]:  # 8-bit, 16-bit and colour versions of the same hand: the same input
        assert r["fingers"] == int(expected.argmax())
        assert list(r["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-6)
        assert r["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert sum(records[3]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_csv_and_text_outputs(tiny_run, tmp_path, capsys):
    write_inputs(tmp_path / "in", hand(tiny_run))
    base = {
        "ckpt": str(tiny_run),
        "inputs": str(tmp_path / "in"),
        "batch_size": 256,
        "output_dir": str(tmp_path / "out"),
    }
    assert run_predict(OmegaConf.create({**base, "output": "csv"})) == 1
    import csv

    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert len(rows) == 5 and rows[4]["error"].startswith("cannot read image") and rows[0]["fingers"] != ""
    assert sum(float(rows[0][f"p{i}"]) for i in range(6)) == pytest.approx(1.0, abs=1e-5)
    capsys.readouterr()
    single = {**base, "inputs": str(tmp_path / "in" / "a_grey.png"), "output": "text"}
    assert run_predict(OmegaConf.create(single)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith(f"{tmp_path / 'in' / 'a_grey.png'}: ") and out[-1].startswith(
        "summary: 1 images predicted, 0 failed"
    )


def test_preprocessing_scales_sixteen_bit_and_converts_colour_to_luma(tmp_path):
    rgb = np.zeros((128, 128, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    luma = decode(tmp_path / "rgb.png").pixels
    assert int(luma[0, 0]) == round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)
    Image.fromarray(np.full((128, 128), 65535, dtype=np.uint16)).save(tmp_path / "white16.png")
    assert int(decode(tmp_path / "white16.png").pixels.max()) == 255
    batch = to_tensor([decode(tmp_path / "rgb.png").pixels])
    assert batch.shape == (1, 1, 128, 128) and float(batch[0, 0, 0, 0]) == pytest.approx(int(luma[0, 0]) / 255)


def test_eval_on_the_runs_test_split_gives_exactly_the_recorded_numbers(tiny_run, tmp_path, capsys):
    assert run_eval(OmegaConf.create({"ckpt": str(tiny_run), "data": {"root": None}, "output_dir": str(tmp_path)})) == 0
    recorded = json.loads((tiny_run / "metrics.json").read_text())
    result = json.loads((tmp_path / "eval.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert result["split"] == "test" and set(result["sets"]) == {"test", "test_aug"}
    for name, r in result["sets"].items():
        assert r["accuracy"] == recorded["metrics"][f"{name}/acc"]  # exactly, not approximately
        assert r["loss"] == recorded["metrics"][f"{name}/loss"]
        assert r["confusion"] == recorded["confusion"][name]
        assert (tmp_path / f"confusion_{name}.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "per-class accuracy" in out and "confusion" in out and f"{result['sets']['test']['accuracy']:.4f}" in out


def test_eval_on_another_folder_uses_every_image(tiny_run, tmp_path):
    folder = write_fingers_folder(tmp_path / "other", per_stratum=2)
    predictor = load_predictor(tiny_run)
    result = evaluate(predictor, root=str(folder))
    assert result["split"] == "all" and set(result["sets"]) == {"all", "all_aug"}
    files = sorted(folder.glob("*.png"))
    assert result["sets"]["all"]["images"] == len(files) == 24
    # accuracy computed apart from the predictions on every file
    from handgestures.data.fingers import parse_name

    x = torch.stack([torch.from_numpy(decode_png(f, 128)) for f in files])[:, None].float() / 255
    labels = torch.tensor([parse_name(f)[0] for f in files])
    with predictor.context():
        right = (predictor.logits(x).argmax(1) == labels).float().mean()
    assert result["sets"]["all"]["accuracy"] == pytest.approx(float(right), abs=1e-6)
    assert sum(map(sum, result["sets"]["all_aug"]["confusion"])) == 24
    with pytest.raises(ValueError, match="split='everything'"):
        evaluate(predictor, root=str(folder), split="everything")


def test_model_card_says_how_training_went_every_fall_and_whether_last_ckpt_is_usable(tiny_run, tmp_path):
    from handgestures.runfolder.card import model_card

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("*.ckpt", "tensorboard"))
    # a dip at 4, not to chance; the training loss jumps at 4 (x2.25), not at 5 (x1.4)
    rows = ["epoch,train/loss,val/acc", "1,1.79,0.40", "2,0.90,0.90", "3,0.20,0.95", "4,0.45,0.30", "5,0.63,0.93"]
    (run / "epochs.csv").write_text("\n".join(rows) + "\n")
    card = model_card(run)
    assert "never fell to near chance (at most 0.267) after reaching 0.5; its largest dip: 0.9500 -> 0.3000 at " \
           "epoch 4" in card  # fmt: skip
    assert "- the training loss jumped (epoch: before → after): 4: 0.200 → 0.450; a few SGD steps ran away there " \
           "(docs/study.md), and `optimizer=sgd_clipped` caps them (not the slides' recipe)" in card  # fmt: skip
    assert "trained in" not in card  # the recipe note is IvanNet augmented's only
    record = json.loads((run / "metrics.json").read_text())
    falls = [{"epoch": 4, "before": 0.95, "best_epoch": 3, "after": 0.17},
             {"epoch": 7, "before": 0.96, "best_epoch": 6, "after": 0.16}]  # fmt: skip
    record.update(collapse={**falls[0], "all": falls, "last_epoch": 8, "last": 0.16}, last_checkpoint_usable=False)
    (run / "metrics.json").write_text(json.dumps(record))
    card = model_card(run)
    assert "fell to near chance at epoch 4: 0.1700, after a best of 0.9500 at epoch 3" in card
    assert "fell to near chance at epoch 7: 0.1600, after a best of 0.9600 at epoch 6" in card
    assert "the last epoch (8) ended at 0.1600: it never recovered, and `last.ckpt` is not the model to use" in card
    assert "`optimizer=sgd_clipped` caps it" in card
    record.update(last_checkpoint_usable=True, collapse={**falls[0], "all": falls[:1], "last_epoch": 8, "last": 0.94})
    (run / "metrics.json").write_text(json.dumps(record))
    card = model_card(run)
    assert "the last epoch (8) ended at 0.9400: it climbed back (0.9300 at epoch 5)" in card and "epoch 7" not in card
    record.update(last_checkpoint_usable=False, collapse={**falls[0], "all": falls[:1], "last_epoch": 8, "last": 0.8})
    (run / "metrics.json").write_text(json.dumps(record))
    card = model_card(run)  # recovered from the fall, then dipped at the last epoch: last.ckpt still not for use
    assert ("the last epoch (8) ended at 0.8000: it climbed back (0.9300 at epoch 5), but ended well below its "
            "best, and `last.ckpt` is not the model to use") in card  # fmt: skip
    record.update(last_checkpoint_usable=True, collapse={**falls[0], "all": falls[:1], "last_epoch": 8, "last": 0.94})
    (run / "metrics.json").write_text(json.dumps(record))
    config = OmegaConf.load(run / "config.yaml")
    config.model, config.data.augment_train = {"_target_": "handgestures.models.IvanNet", "num_classes": 6}, True
    config.trainer.precision = "bf16-mixed"
    OmegaConf.save(config, run / "config.yaml")
    card = model_card(run)
    assert "- trained in bf16-mixed: not the study's precision" in card
    assert "retrain with `trainer.precision=32-true` (the default)" in card
    config.trainer.precision = "32-true"
    OmegaConf.save(config, run / "config.yaml")
    card = model_card(run)
    assert "- trained in 32-true: the default for this recipe, as the study trained it" in card
    assert "retrain" not in card and "have fallen to chance in either precision" in card
    assert "gradients clipped" not in card
    config.trainer.gradient_clip_val, config.trainer.gradient_clip_algorithm = 20.0, "norm"  # optimizer=sgd_clipped
    OmegaConf.save(config, run / "config.yaml")
    card = model_card(run)
    assert "SGD lr 0.01, gradients clipped at norm 20 (not the slides' plain SGD);" in card
    assert "4: 0.200 → 0.450; a few SGD steps ran away there (docs/study.md)\n" in card  # no advice to clip


def test_model_card_holds_the_run_and_a_command_that_reproduces_its_config(tiny_run):
    card = (tiny_run / "MODEL_CARD.md").read_text()
    config = OmegaConf.to_container(OmegaConf.load(tiny_run / "config.yaml"), resolve=True)
    metrics = json.loads((tiny_run / "metrics.json").read_text())["metrics"]
    params = sum(p.numel() for p in build_net(config["model"]).parameters())
    assert f"{params:,} parameters" in card
    for name in ("train", "val", "test", "train_aug", "val_aug", "test_aug"):
        assert f"| {name} |" in card and f"{metrics[name + '/acc']:.4f}" in card
    assert f"{metrics['test/acc']:.4f} on upright hands and {metrics['test_aug/acc']:.4f} on rotated/flipped" in card
    assert "train 168, val 36, test 36" in card and config["trainer"]["precision"] in card
    command = card.split("## Reproduce\n```\n")[1].split("\n```")[0]
    args = shlex.split(command)
    assert args[:2] == ["python", "train.py"]
    again = OmegaConf.to_container(compose_train(args[2:], tiny_run), resolve=True)
    for cfg in (config, again):
        for key in ("paths", "run_info"):
            cfg.pop(key, None)
        cfg["trainer"].pop("default_root_dir")
        for group in cfg.get("callbacks") or {}:
            cfg["callbacks"][group].pop("dirpath", None)
    assert again == config


def test_a_checkpoint_from_before_self_description_is_completed_from_its_run_folder(tiny_run, tmp_path):
    raw = torch.load(best_checkpoint(tiny_run), map_location="cpu", weights_only=True)
    for key in ("net_spec", "description"):
        raw["hyper_parameters"].pop(key)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    old = tmp_path / "run" / "checkpoints" / "old.ckpt"
    torch.save(raw, old)
    with pytest.raises(CheckpointError, match="does not record its network"):
        load_module(old)
    shutil.copy(tiny_run / "config.yaml", tmp_path / "run" / "config.yaml")
    module, description = load_module(old)
    assert description["net_spec"]["_target_"] == OmegaConf.load(tiny_run / "config.yaml").model._target_
    assert torch.equal(module.net.classifier[1].weight, raw["state_dict"]["net.classifier.1.weight"])


def test_metrics_json_and_the_model_card_say_which_machine_trained_the_run(tiny_run):
    machine = json.loads((tiny_run / "metrics.json").read_text())["hardware"]
    assert machine["cpu"] == cpu_model() and machine["cpu"] not in ("", "unknown")
    assert machine["cpu_native_bf16"] is native_bf16("cpu") and machine["torch"] == torch.__version__
    assert isinstance(machine["threads"], int) and machine["threads"] >= 1
    assert machine["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    bf16 = "native bf16" if machine["cpu_native_bf16"] else "no native bf16"
    card = (tiny_run / "MODEL_CARD.md").read_text()
    assert f"- hardware: {machine['cpu']} ({bf16}); {machine['threads']} threads; torch {torch.__version__}" in card


def test_cpu_model_falls_back_to_the_platform_without_proc_cpuinfo(monkeypatch):
    def no_file(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", no_file)
    monkeypatch.setattr("platform.processor", lambda: "some-cpu")
    assert cpu_model() == "some-cpu"
