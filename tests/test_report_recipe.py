"""The report says where each run's data came from, its epochs and batch limits, and which runs are not the study's recipe."""

import csv
import json

import yaml

from handgestures.analysis.report import build_report
from handgestures.analysis.study import recipe_differences

STUDY_CONFIG = {
    "seed": 0, "epochs": 10, "batch_size": 32,
    "data": {"root": "/somewhere/fingers/train", "builtin_size": 21600, "split": "random"},
    "trainer": {"precision": "32-true", "limit_train_batches": None, "limit_val_batches": None,
                "limit_test_batches": None},
    "optimizer": {"lr": 0.01, "momentum": 0.0},
}  # fmt: skip


def write_run(folder, config, model="carlosnet", data="base"):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"model": model, "data": data, "seed": config["seed"], "status": "done", "epochs_run": config["epochs"],
               "metrics": {"test/acc": 0.9}, "confusion": {}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))


def smoke_config():
    config = {
        **STUDY_CONFIG,
        "epochs": 1,
        "seed": 1,
        "data": {**STUDY_CONFIG["data"], "root": None, "builtin_size": 240},
    }
    config["trainer"] = {**STUDY_CONFIG["trainer"], "limit_train_batches": 3, "limit_test_batches": 1}
    return config


def test_the_recipe_check_names_every_difference():
    assert recipe_differences("carlosnet", "base", STUDY_CONFIG) == []
    assert recipe_differences("carlosnet", "augmented", STUDY_CONFIG) == ["10 epochs, not 30"]
    assert recipe_differences("carlosnet", "base", smoke_config()) == [
        "built-in hands (240), not the real images", "1 epochs, not 10",
        "limit_train_batches=3", "limit_test_batches=1",
    ]  # fmt: skip
    other = {**STUDY_CONFIG, "batch_size": 64, "optimizer": {"lr": 0.05, "momentum": 0.9},
             "data": {**STUDY_CONFIG["data"], "split": "grouped"}}  # fmt: skip
    assert recipe_differences("ivannet", "base", other) == [
        "batch size 64, not 32", "SGD lr=0.05, momentum=0.9, not 0.01 and 0", "the grouped split, not the study's random one"
    ]  # fmt: skip
    assert recipe_differences("carlosnet", "base", {}) == ["no config.yaml"]


def test_the_clipped_variant_and_other_optimizers_are_not_the_recipe():
    """optimizer=sgd_clipped keeps lr and momentum; the report still says it is not the slides' SGD."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from handgestures import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        plain = compose("train", overrides=["model=ivannet", "data=augmented"])
        clipped = compose("train", overrides=["model=ivannet", "data=augmented", "optimizer=sgd_clipped"])
    assert plain.trainer.gradient_clip_val is None
    assert clipped.optimizer == plain.optimizer  # the study's SGD, from conf/optimizer/sgd.yaml
    assert clipped.trainer.gradient_clip_algorithm == "norm" and clipped.trainer.gradient_clip_val > 0
    config = {**STUDY_CONFIG, "epochs": 30, "trainer": {**STUDY_CONFIG["trainer"],
              **OmegaConf.to_container(clipped.trainer)}}  # fmt: skip
    assert recipe_differences("ivannet", "augmented", config) == [
        f"gradients clipped (norm {clipped.trainer.gradient_clip_val}), not plain SGD"
    ]
    adam = {**STUDY_CONFIG, "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.01, "momentum": 0.0}}
    assert recipe_differences("carlosnet", "base", adam) == ["optimizer torch.optim.Adam, not torch.optim.SGD"]
    decay = {**STUDY_CONFIG, "optimizer": {**STUDY_CONFIG["optimizer"], "weight_decay": 1e-4}}
    assert recipe_differences("carlosnet", "base", decay) == ["SGD weight_decay=0.0001, nesterov=False"]


def test_report_and_runs_csv_mark_runs_that_are_not_the_recipe(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "carlosnet-base-seed0", STUDY_CONFIG)
    write_run(runs / "carlosnet-base-seed1", smoke_config())
    report = build_report(runs, tmp_path / "out").read_text()
    assert "**Not comparable with the slides: 1 of 2 runs**" in report
    assert "STUDY.md" not in report and "shared" not in report  # cites docs/ in the repository
    assert "docs/study.md" in report
    assert "**CarlosNet** (*not comparable*)" in report  # the table row stands on a smoke run
    with (tmp_path / "out" / "runs.csv").open() as fh:
        rows = {r["seed"]: r for r in csv.DictReader(fh)}
    assert (
        rows["0"]["data_source"] == "Fingers images (fingers/train)" and rows["0"]["comparable_with_slides"] == "True"
    )
    assert rows["0"]["batch_limits"] == "none" and rows["0"]["epochs_configured"] == "10"
    assert rows["1"]["data_source"] == "built-in hands (240)" and rows["1"]["comparable_with_slides"] == "False"
    assert rows["1"]["batch_limits"] == "train 3, test 1" and rows["1"]["epochs_configured"] == "1"
    assert rows["1"]["not_comparable_because"].startswith("built-in hands (240), not the real images; 1 epochs")
    runs_table = report[report.index("## Runs") :]
    assert "| Fingers images (fingers/train) |" in runs_table and "| built-in hands (240) |" in runs_table
    assert "| 1 / 1 | train 3, test 1 |" in runs_table and "**no**: built-in hands (240)" in runs_table
