"""The report: a tiny real sweep and its report.md, CSVs and figures; hand-made runs for the edge cases."""

import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT
from PIL import Image

from handgestures.analysis.falls import never_recovered, spans
from handgestures.analysis.report import SLIDES, build_report, main
from handgestures.analysis.runs import Run
from handgestures.training.train import resolve_precision

MODELS = ("carlosnet", "ivannet")
DATASETS = ("base", "augmented")
TINY_SWEEP = [
    "epochs=1", "data.builtin_size=240", "data.eval_batch_size=64", "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]  # fmt: skip
BASE_COLUMNS = ["train/acc", "val/acc", "test/acc", "train/loss", "val/loss", "test/loss"]
TABLE_COLUMNS = {
    "base": BASE_COLUMNS,
    "augmented": ["train_aug/acc", "val/acc", "test/acc", "train_aug/loss", "val/loss", "test/loss"],
    "generalisation": ["train_aug/acc", "val_aug/acc", "test_aug/acc"],
}
RUN_FOLDER = re.compile(r"^([a-z]+-[a-z]+-seed\d+)(-job\d+)?$")  # conf/hydra/default.yaml's sweep subdir
SECTIONS = {"base": "Base dataset", "augmented": "Augmented dataset", "generalisation": "Generalisation"}


def sweep_env(tmp_path_factory):
    return {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


def md_rows(report: str, heading: str) -> list[list[str]]:
    """The cells of each row (header included) of the table in the ``## heading...`` section."""
    body = next(s for s in re.split(r"^## ", report, flags=re.M) if s.startswith(heading))
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in body.splitlines()
            if line.startswith("| ")]  # fmt: skip


def md_table(report: str, heading: str) -> dict[str, list[str]]:
    """The study table in that section: row label (unbolded) -> the other cells."""
    return {cells[0].removesuffix(" (*not comparable*)").strip("*"): cells[1:] for cells in md_rows(report, heading)}


def parse_value(cell: str) -> tuple[float, float | None]:
    """'0.9300 ± 0.0361' -> (0.93, 0.0361); '0.93' -> (0.93, None)."""
    mean, _, std = cell.strip("*").partition(" ± ")
    return float(mean), float(std) if std else None


def read_csv(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def assert_valid_png(path):
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 0 and img.height > 0


# ---------------------------------------------------------------------------- a real tiny sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Both networks on both variants, 1 epoch of 2 batches, then scripts/report.py on the sweep."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    cmd = [sys.executable, "train.py", "-m", "model=carlosnet,ivannet", "data=base,augmented", *TINY_SWEEP,
           f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=sweep_env(tmp_path_factory))
    seconds = time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:]
    report_dir = sweep_dir / "report"
    rep = subprocess.run([sys.executable, "scripts/report.py", str(sweep_dir), "--out", str(report_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert rep.stdout.strip() == str(report_dir / "report.md")
    return sweep_dir, report_dir, seconds


def test_sweep_is_quick_and_names_folders_by_choice(sweep):
    sweep_dir, _, seconds = sweep
    assert seconds < 180, f"the tiny sweep took {seconds:.0f} s"  # about 35 s on 2 cores
    folders = [p for p in sweep_dir.iterdir() if (p / "metrics.json").is_file()]
    names = sorted(RUN_FOLDER.match(p.name)[1] for p in folders)  # a "-job<N>" suffix is allowed
    assert names == sorted(f"{m}-{d}-seed0" for m in MODELS for d in DATASETS)
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        assert RUN_FOLDER.match(folder.name)[1] == f"{metrics['model']}-{metrics['data']}-seed{metrics['seed']}"
        assert metrics["status"] == "done"


def test_report_tables_match_metrics_json(sweep):
    sweep_dir, report_dir, _ = sweep
    report = (report_dir / "report.md").read_text()
    runs = {(r["model"], r["data"]): r for r in map(json.loads, map(Path.read_text, sweep_dir.glob("*/metrics.json")))}
    assert len(runs) == 4
    labels = {"carlosnet": "CarlosNet", "ivannet": "IvanNet"}
    for table, columns in TABLE_COLUMNS.items():
        rows = md_table(report, SECTIONS[table])
        csv_rows = read_csv(report_dir / f"table_{table}.csv")
        for (model, data), run in runs.items():
            if table == "generalisation":
                label = f"{labels[model]}, {data}"
            elif data == table:
                label = labels[model]
            else:
                continue
            cells = rows[label]
            assert run["collapse"] is None  # these short seeded runs never reach the guard's 0.5
            assert cells[0] == "n=1; 0 of 1 fell to chance"
            for cell, key in zip(cells[1:], columns, strict=True):
                value, std = parse_value(cell)
                assert std is None  # one seed: a plain value
                assert value == pytest.approx(run["metrics"][key], rel=1e-3, abs=1e-4), (table, label, key)
                (row,) = [r for r in csv_rows if r["row"] == label and r["metric"] == key]
                assert float(row["mean"]) == pytest.approx(run["metrics"][key], abs=1e-12)
                assert row["std"] == "" and row["n"] == "1"
                assert float(row["slides"]) == SLIDES[table][label][columns.index(key)]
            slides_cells = rows[f"{label}, slides"][1:]
            assert [parse_value(c)[0] for c in slides_cells] == list(SLIDES[table][label])


def test_report_mentions_slides_and_lists_runs(sweep):
    sweep_dir, report_dir, _ = sweep
    report = (report_dir / "report.md").read_text()
    for value in ("0.9994", "2.8292e-05", "0.00955", "0.1972"):
        assert value in report
    assert "None: every run evaluated." in report
    runs_csv = read_csv(report_dir / "runs.csv")
    assert sorted((r["model"], r["data"], r["seed"], r["status"]) for r in runs_csv) == \
        sorted((m, d, "0", "done") for m in MODELS for d in DATASETS)  # fmt: skip
    for row in runs_csv:
        metrics = json.loads((Path(row["folder"]) / "metrics.json").read_text())
        assert (metrics["model"], metrics["data"], metrics["seed"]) == (row["model"], row["data"], 0)
        assert float(row["test/acc"]) == metrics["metrics"]["test/acc"]
        assert float(row["fit_seconds"]) == metrics["fit_seconds"]
        fp32 = (row["model"], row["data"]) == ("ivannet", "augmented")  # conf/model_data/ivannet_augmented.yaml
        assert row["precision"] == metrics["precision"] == ("32-true" if fp32 else resolve_precision("auto"))
    header, *per_run = md_rows(report, "Runs")
    assert header[:6] == ["model", "data", "seed", "status", "data source", "precision"]
    assert sorted(tuple(cells[:6]) for cells in per_run) == sorted(
        (m, d, "0", "done", "built-in hands (240)", "32-true" if (m, d) == ("ivannet", "augmented")
         else resolve_precision("auto")) for m in MODELS for d in DATASETS
    )  # fmt: skip
    # tiny runs on the built-in hands: every one marked, and the report says so up front
    assert all(cells[header.index("comparable with the slides")].startswith("**no**") for cells in per_run)
    assert "**Not comparable with the slides: 4 of 4 runs**" in report
    assert "Total job time" in report


def test_figures_are_pngs_linked_from_the_report(sweep):
    _, report_dir, _ = sweep
    report = (report_dir / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", report)
    for m in MODELS:
        for d in DATASETS:
            for kind in ("curves", "confusion-test"):
                assert f"figures/{m}-{d}-seed0-{kind}.png" in links
    for link in links:
        assert_valid_png(report_dir / link)


# ---------------------------------------------------------------------------- hand-made runs


def write_run(folder, model, data, seed, status="done", test_acc=0.5, error=None, epochs=3):
    folder.mkdir(parents=True)
    if status in ("done", "trained"):
        metrics = {"model": model, "data": data, "seed": seed, "status": status, "epochs_run": epochs,
                   "best_checkpoint": None, "best_val_acc": 0.8, "fit_seconds": 12.5, "startup_seconds": 2.0,
                   "train_images_per_second": 100.0}  # fmt: skip
        if status == "done":
            values = {k: test_acc + i / 100 for i, k in enumerate(BASE_COLUMNS)}
            values.update({f"{s}_aug/{m}": test_acc / 2 for s in ("train", "val", "test") for m in ("acc", "loss")})
            values["test/acc"] = test_acc
            confusion = [[5 if i == j else 1 for j in range(6)] for i in range(6)]
            metrics.update(metrics=values, confusion={"test": confusion}, eval_seconds=1.5, wall_seconds=16.0)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if error:
        (folder / "failed.json").write_text(json.dumps({"error": error, "traceback": "Traceback ...\n"}))
    if epochs:
        lines = ["epoch,step,train/loss,val/loss,train/acc,val/acc,seconds"]
        lines += [f"{e},{e * 10},{1 / e},{1.2 / e},{1 - 0.5 / e},{1 - 0.6 / e},1.0" for e in range(1, epochs + 1)]
        (folder / "epochs.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def hand_made(tmp_path):
    """carlosnet/base: 3 seeds; carlosnet/augmented: trained only; ivannet/base: failed; ivannet/augmented: none."""
    runs = tmp_path / "runs"
    for seed, acc in enumerate((0.90, 0.92, 0.97)):
        write_run(runs / "sweep1" / f"carlosnet-base-seed{seed}", "carlosnet", "base", seed, test_acc=acc)
    write_run(runs / "sweep1" / "carlosnet-augmented-seed0", "carlosnet", "augmented", 0, status="trained")
    failed = runs / "sweep2" / "7"  # a folder named by job number: identity from Hydra's files
    write_run(failed, "ivannet", "base", 4, status="failed", epochs=0,
              error="FileNotFoundError: data.root '/gone' is not a folder\nsecond line")  # fmt: skip
    (failed / ".hydra").mkdir()
    (failed / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      model: ivannet\n"
                                                  "      data: base\n")  # fmt: skip
    (failed / ".hydra" / "config.yaml").write_text("seed: 4\nepochs: ${data.epochs}\ntrainer:\n  precision: 32-true\n")
    return runs


def test_seeds_are_averaged_with_sample_std(hand_made, tmp_path):
    report_path = build_report(hand_made, tmp_path / "out")
    assert report_path == tmp_path / "out" / "report.md"
    accs = [0.90, 0.92, 0.97]
    mean, std = statistics.fmean(accs), statistics.stdev(accs)  # 0.93, 0.0361
    rows = read_csv(tmp_path / "out" / "table_base.csv")
    (cell,) = [r for r in rows if r["row"] == "CarlosNet" and r["metric"] == "test/acc"]
    assert float(cell["mean"]) == pytest.approx(mean) and float(cell["std"]) == pytest.approx(std)
    assert cell["n"] == "3" and float(cell["slides"]) == 0.9994
    md = md_table(report_path.read_text(), "Base dataset")
    assert md["CarlosNet"][0] == "n=3"
    assert md["CarlosNet"][3] == "0.9300 ± 0.0361"
    train_loss = [acc + 0.03 for acc in accs]
    assert parse_value(md["CarlosNet"][4]) == pytest.approx((statistics.fmean(train_loss),
                                                             statistics.stdev(train_loss)), abs=5e-4)  # fmt: skip
    assert_valid_png(tmp_path / "out" / "figures" / "carlosnet-base-seeds.png")
    for seed in range(3):
        assert_valid_png(tmp_path / "out" / "figures" / f"carlosnet-base-seed{seed}-curves.png")
        assert_valid_png(tmp_path / "out" / "figures" / f"carlosnet-base-seed{seed}-confusion-test.png")


def test_failed_trained_and_missing_runs_are_marked(hand_made, tmp_path):
    report = build_report(hand_made, tmp_path / "out").read_text()
    assert "- missing: no run of IvanNet on augmented" in report
    assert "- failed: ivannet-base-seed4 (7): FileNotFoundError: data.root '/gone' is not a folder\n" in report
    assert "second line" not in report
    assert "- not evaluated: carlosnet-augmented-seed0" in report
    base, aug, gen = (md_table(report, SECTIONS[t]) for t in ("base", "augmented", "generalisation"))
    assert base["IvanNet"][0] == "n=0; **1 failed**" and set(base["IvanNet"][1:]) == {"—"}
    assert aug["IvanNet"][0] == "**MISSING** (no run)" and set(aug["IvanNet"][1:]) == {"—"}
    assert aug["CarlosNet"][0] == "n=0; **1 not evaluated**" and set(aug["CarlosNet"][1:]) == {"—"}
    assert gen["IvanNet, augmented"][0].startswith("**MISSING**")
    assert gen["IvanNet, augmented, slides"][1:] == ["*0.9823*", "*0.9942*", "*0.9955*"]
    runs = {(r["model"], r["data"], r["seed"]): r for r in read_csv(tmp_path / "out" / "runs.csv")}
    assert runs[("ivannet", "base", "4")]["status"] == "failed"
    assert runs[("ivannet", "base", "4")]["error"].startswith("FileNotFoundError")
    assert runs[("ivannet", "base", "4")]["precision"] == "32-true"  # no metrics.json: from the saved config
    assert runs[("carlosnet", "base", "0")]["precision"] == ""  # neither file says
    assert runs[("carlosnet", "augmented", "0")]["status"] == "trained"
    assert len(runs) == 5
    gen_csv = [r for r in read_csv(tmp_path / "out" / "table_generalisation.csv") if r["row"] == "IvanNet, augmented"]
    assert {r["n"] for r in gen_csv} == {"0"} and {r["mean"] for r in gen_csv} == {""}
    assert {r["runs"] for r in gen_csv} == {"MISSING (no run)"}


def test_main_defaults_to_the_runs_folder(hand_made, capsys):
    assert main([str(hand_made)]) == 0
    assert capsys.readouterr().out.strip() == str(hand_made / "report.md")
    assert (hand_made / "runs.csv").is_file() and (hand_made / "figures").is_dir()
    with pytest.raises(SystemExit):
        main([str(hand_made / "nowhere")])


def test_runs_that_fell_to_chance_are_counted_in_their_row_and_named_in_the_runs_table(tmp_path):
    runs = tmp_path / "runs"
    falls = {0: None, 1: (12, False), 2: (18, True)}  # seed: (epoch of the fall, last.ckpt usable)
    for seed, fall in falls.items():
        folder = runs / f"ivannet-augmented-seed{seed}"
        write_run(folder, "ivannet", "augmented", seed, test_acc=0.9)
        record = json.loads((folder / "metrics.json").read_text())
        if fall:
            event = {"epoch": fall[0], "before": 0.9, "best_epoch": fall[0] - 1, "after": 0.17}
            record.update(collapse={**event, "all": [event], "last": 0.17}, last_checkpoint_usable=fall[1])
        else:
            record.update(collapse=None, last_checkpoint_usable=True)
        (folder / "metrics.json").write_text(json.dumps(record))
    write_run(runs / "ivannet-base-seed0", "ivannet", "base", 0, test_acc=0.9)  # made before the guard: unknown
    report = build_report(runs, tmp_path / "out").read_text()
    assert md_table(report, "Augmented dataset")["IvanNet"][0] == "n=3; **2 of 3 fell to chance** (1 never recovered)"
    assert md_table(report, "Base dataset")["IvanNet"][0] == "n=1"
    table = md_rows(report, "Runs")
    column = table[0].index("fell to chance")
    cells = {(row[1], row[2]): row[column] for row in table[1:]}
    assert cells == {("augmented", "0"): "no", ("augmented", "1"): "**epoch 12**, never recovered",
                     ("augmented", "2"): "**epoch 18**, recovered", ("base", "0"): "—"}  # fmt: skip
    rates = {(r["row"], r["metric"]): r["fell_to_chance"] for r in read_csv(tmp_path / "out" / "table_augmented.csv")}
    assert rates[("IvanNet", "test/acc")] == "2 of 3 (1 never recovered)"
    base = {r["row"]: r["fell_to_chance"] for r in read_csv(tmp_path / "out" / "table_base.csv")}
    assert base["IvanNet"] == ""  # a run from before the guard says nothing either way
    per_run = {(r["data"], r["seed"]): r["fell_to_chance"] for r in read_csv(tmp_path / "out" / "runs.csv")}
    assert per_run == {("augmented", "0"): "no", ("augmented", "1"): "epoch 12, never recovered",
                       ("augmented", "2"): "epoch 18, recovered", ("base", "0"): "—"}  # fmt: skip


def test_a_row_that_never_fell_says_so_and_a_row_of_mixed_precisions_is_a_problem(tmp_path):
    runs = tmp_path / "runs"
    for seed, precision in enumerate(("32-true", "bf16-mixed", "32-true")):
        folder = runs / f"ivannet-augmented-seed{seed}"
        write_run(folder, "ivannet", "augmented", seed, test_acc=0.9)
        record = json.loads((folder / "metrics.json").read_text())
        record.update(collapse=None, last_checkpoint_usable=True, precision=precision,
                      hardware={"cpu": f"CPU {seed}", "gpu": None, "threads": seed + 1})  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(record))
    write_run(runs / "ivannet-base-seed0", "ivannet", "base", 0, test_acc=0.9)  # before the guard: unrecorded
    record = json.loads((runs / "ivannet-base-seed0" / "metrics.json").read_text())
    (runs / "ivannet-base-seed0" / "metrics.json").write_text(json.dumps({**record, "precision": "bf16-mixed"}))
    report = build_report(runs, tmp_path / "out").read_text()
    assert md_table(report, "Augmented dataset")["IvanNet"][0] == "n=3; 0 of 3 fell to chance"
    problems = report.split("## Problems")[1].split("##")[0]
    assert ("mixed precision: the ivannet-augmented row averages runs of different precisions "
            "(32-true: seed 0, 2; bf16-mixed: seed 1)") in problems  # fmt: skip
    assert "ivannet-base row" not in problems  # one precision
    rows = {r["row"]: r for r in read_csv(tmp_path / "out" / "table_augmented.csv") if r["metric"] == "test/acc"}
    assert rows["IvanNet"]["precision"] == "32-true; bf16-mixed" and rows["IvanNet"]["fell_to_chance"] == "0 of 3"
    machines = {r["seed"]: (r["cpu"], r["threads"]) for r in read_csv(tmp_path / "out" / "runs.csv")
                if r["data"] == "augmented"}  # fmt: skip
    assert machines == {"0": ("CPU 0", "1"), "1": ("CPU 1", "2"), "2": ("CPU 2", "3")}


def test_consecutive_epochs_at_chance_are_one_fall():
    assert spans([3, 12, 13, 14, 15, 29]) == "3, 12-15, 29"
    assert spans([7]) == "7" and spans([]) == ""


def test_a_run_that_climbed_back_and_dipped_at_its_last_epoch_recovered(tmp_path):
    """Recovery is read from the curve: back at the guard's min_best after the last epoch at chance.

    IvanNet augmented grouped fp32 seed 1 fell at epoch 19, was at 0.97 by epoch 26 and ended at
    0.81: last.ckpt is not for use (more than 0.05 below the best), yet it did recover. A run still
    at 0.33 at its last epoch, after falling, did not.
    """
    curves = {0: [0.5, 0.9, 1.0, 0.17, 0.17, 0.66, 0.97, 0.81], 1: [0.5, 0.9, 0.17, 0.17, 0.17, 0.17, 0.17, 0.33]}
    for seed, curve in curves.items():
        folder = tmp_path / "runs" / f"ivannet-augmented-seed{seed}"
        write_run(folder, "ivannet", "augmented", seed, test_acc=0.9, epochs=0)
        falls = [{"epoch": e, "before": max(curve[: e - 1]), "best_epoch": curve.index(max(curve[: e - 1])) + 1,
                  "after": v} for e, v in enumerate(curve, 1) if v < 0.27 and max(curve[: e - 1] or [0]) >= 0.5]  # fmt: skip
        record = json.loads((folder / "metrics.json").read_text())
        record.update(collapse={**falls[0], "all": falls, "last_epoch": 8, "last": curve[-1]},
                      last_checkpoint_usable=False)  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(record))
        rows = [f"{e},{e * 10},1.0,1.0,0.5,{v},1.0" for e, v in enumerate(curve, 1)]
        (folder / "epochs.csv").write_text(
            "\n".join(["epoch,step,train/loss,val/loss,train/acc,val/acc,seconds", *rows]) + "\n"
        )
    build_report(tmp_path / "runs", tmp_path / "out")
    per_run = {r["seed"]: r["fell_to_chance"] for r in read_csv(tmp_path / "out" / "runs.csv")}
    assert per_run == {"0": "epoch 4-5, recovered", "1": "epoch 3-7, never recovered"}
    rates = {(r["row"], r["metric"]): r["fell_to_chance"] for r in read_csv(tmp_path / "out" / "table_augmented.csv")}
    assert rates[("IvanNet", "test/acc")] == "2 of 2 (1 never recovered)"


def test_recovery_without_a_validation_curve_falls_back_on_last_checkpoint_usable(tmp_path):
    """A curve without val/acc (or with NaN) says nothing: the record's last_checkpoint_usable decides."""
    event = {"epoch": 2, "before": 0.9, "best_epoch": 1, "after": 0.17}
    info = {"status": "done", "collapse": {**event, "all": [event]}, "last_checkpoint_usable": False}
    rows = [
        {"epoch": 1.0, "train/loss": 1.0},
        {"epoch": 2.0, "train/loss": 1.7},
        {"epoch": 3.0, "val/acc": float("nan")},
    ]
    run = Run(tmp_path / "none", "ivannet", "augmented", 0, "done", info, None, rows)
    assert never_recovered(run)
    run.info["last_checkpoint_usable"] = True
    assert not never_recovered(run)
