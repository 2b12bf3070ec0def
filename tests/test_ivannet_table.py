"""The IvanNet seed x precision table: docs/study.md agrees with results/ivannet/, and its columns say what they claim."""

import importlib.util

import pytest
from helpers import ROOT


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table = script("ivannet_table")


def epochs(*values):
    return [{"epoch": i, "val/acc": v} for i, v in enumerate(values, start=1)]


def test_docs_table_agrees_with_the_run_records():
    rows = table.rows()
    assert len(rows) >= 6, "results/ivannet/ holds the experiment's runs"
    assert table.table_in(table.DOC.read_text()) == table.generated(), (
        "docs/study.md's IvanNet table differs from results/ivannet/: run `python scripts/ivannet_table.py --write`"
    )


def test_the_deepest_fall_is_measured_from_the_best_before_it():
    # climbing noise early (0.5 -> 0.45) is a smaller fall than 1.0 -> 0.77 later
    assert table.deepest_fall(epochs(0.2, 0.5, 0.45, 1.0, 0.77, 0.99)) == "0.770, 5 (from 1.000)"
    assert table.deepest_fall(epochs(0.2, 0.4, 0.6)) == "none"
    assert table.deepest_fall(epochs(0.9)) == "none"


def test_the_best_epoch_is_the_first_to_reach_the_highest_accuracy():
    """As ModelCheckpoint keeps it (a tie is not an improvement); epochs are numbered from 1 as in epochs.csv."""
    assert table.best_epoch(epochs(0.3, 0.9997, 0.98, 0.9997)) == "2, 0.9997"


def test_a_loss_jump_is_a_rise_to_one_and_a_half_times_the_epoch_before():
    rows = [{"epoch": i, "train/loss": v} for i, v in enumerate([1.79, 1.70, 0.16, 0.38, 0.20, 0.29, 0.30], start=1)]
    # 0.16 -> 0.38 and 0.20 -> 0.29 (x1.45, not a jump); a fall never counts
    assert table.loss_jumps(rows) == "4: 0.160 → 0.380"
    rows[5]["train/loss"] = 0.31
    assert table.loss_jumps(rows) == "4: 0.160 → 0.380; 6: 0.200 → 0.310"
    assert table.loss_jumps(rows[:3]) == "none"


def test_most_dead_names_the_layer_and_epoch_and_ignores_the_first_epoch():
    rows = [{"epoch": 1, "dead/conv1": 0.9}, {"epoch": 2, "dead/conv1": 0.05, "dead/conv2": 0.0},
            {"epoch": 3, "dead/conv1": 0.6, "dead/conv2": 0.8}]  # fmt: skip
    assert table.most_dead(rows, {}) == "conv2 80%, epoch 3"
    # a run without the columns takes them from health_epochs.csv's rows, by epoch
    assert table.most_dead(epochs(0.5, 0.6), {2: {"dead/conv4": 0.25}}) == "conv4 25%, epoch 2"
    assert table.most_dead(epochs(0.5, 0.6), {}) == "not measured"
    assert table.most_dead([{"epoch": 2, "dead/conv1": 0.0}], {}) == "none dead"


@pytest.mark.parametrize("name", ["ivannet_table", "readme_table"])
def test_writing_a_table_between_markers_replaces_only_what_is_between_them(name):
    module = script(name)
    empty = f"before\n{module.START} how -->\n{module.END}\nafter\n"
    once = module.with_table(empty, "| a |\n|---|")
    assert once == f"before\n{module.START} how -->\n| a |\n|---|\n{module.END}\nafter\n"
    assert module.with_table(once, "| b |") == f"before\n{module.START} how -->\n| b |\n{module.END}\nafter\n"
    assert module.table_in(once) == "| a |\n|---|"


def test_a_clipped_run_says_so_and_sorts_after_the_study_recipe(tmp_path):
    import json

    import yaml

    def run(name, clip):
        folder = tmp_path / name
        folder.mkdir()
        trainer = {"precision": "bf16-mixed", "gradient_clip_val": clip}
        (folder / "config.yaml").write_text(yaml.safe_dump({"seed": 1, "epochs": 2, "data": {"split": "random"},
                                                            "trainer": trainer}))  # fmt: skip
        (folder / "epochs.csv").write_text("epoch,train/loss,val/acc\n1,1.7,0.5\n2,1.2,0.9\n")
        metrics = {"model": "ivannet", "data": "augmented", "seed": 1, "status": "done", "epochs_run": 2,
                   "precision": "bf16-mixed", "metrics": {"test/acc": 0.9, "test_aug/acc": 0.8}}  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return table.row_of(folder, "", {})

    plain, clipped = run("plain", None), run("clipped", 20.0)
    assert "| bf16-mixed, gradients clipped at 20 |" in clipped[1] and "clipped" not in plain[1]
    assert sorted([clipped, plain])[0] == plain
