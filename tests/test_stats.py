"""handgestures.analysis.stats: t intervals, paired differences, protocols; the report's use of them."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from test_report import md_table, read_csv, write_run

from handgestures.analysis.report import build_report
from handgestures.analysis.runs import load_runs
from handgestures.analysis.stats import (
    differences_md,
    mean_ci,
    paired_difference,
    paired_differences,
    t_quantile,
    tag_protocols,
)


@pytest.mark.parametrize(("df", "published"), [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)])
def test_t_quantiles_match_the_printed_tables(df, published):
    assert t_quantile(0.975, df) == pytest.approx(published, abs=1e-3)


def test_mean_ci_is_the_t_interval_and_clips_to_the_range():
    ci = mean_ci([1.0, 2.0, 3.0, None, math.nan])
    half = 4.3027 * 1.0 / math.sqrt(3)
    assert ci["n"] == 3 and ci["mean"] == 2.0 and ci["std"] == 1.0
    assert ci["low"] == pytest.approx(2 - half, abs=1e-3) and ci["high"] == pytest.approx(2 + half, abs=1e-3)
    clipped = mean_ci([0.99, 1.0, 1.0], bounds=(0, 1))
    assert clipped["high"] == 1 and clipped["low"] < 0.99
    single = mean_ci([0.5])
    assert single["mean"] == 0.5 and single["low"] is None and single["std"] is None


def test_paired_difference_uses_only_shared_seeds():
    diff = paired_difference({0: 0.9, 1: 0.8, 2: 0.7, 5: 0.1}, {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5})
    assert diff["seeds"] == [0, 1, 2] and diff["n"] == 3
    assert diff["mean"] == pytest.approx(0.3)
    assert diff["std"] == pytest.approx(statistics.stdev([0.4, 0.3, 0.2]))


def grouped(folder):
    (folder / "config.yaml").write_text("seed: 0\ndata:\n  split: grouped\n")


@pytest.fixture
def two_protocols(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        # no epochs.csv: the report then draws no learning curves, which these tests do not look at
        write_run(
            runs / "random" / f"carlosnet-base-seed{seed}",
            "carlosnet",
            "base",
            seed,
            test_acc=0.9 + seed / 100,
            epochs=0,
        )
        write_run(
            runs / "random" / f"carlosnet-augmented-seed{seed}", "carlosnet", "augmented", seed, test_acc=0.8, epochs=0
        )
        write_run(
            runs / "grouped" / f"carlosnet-base-seed{seed}",
            "carlosnet",
            "base",
            seed,
            test_acc=0.7 + seed / 50,
            epochs=0,
        )
        grouped(runs / "grouped" / f"carlosnet-base-seed{seed}")
    write_run(runs / "baselines" / "nn_thumb16-base-seed0", "nn_thumb16", "base", 0, test_acc=0.6, epochs=0)
    metrics = json.loads((runs / "baselines" / "nn_thumb16-base-seed0" / "metrics.json").read_text())
    (runs / "baselines" / "nn_thumb16-base-seed0" / "metrics.json").write_text(
        json.dumps({**metrics, "split": "grouped"})
    )
    return runs


def test_protocols_and_differences(two_protocols):
    runs = tag_protocols(load_runs(two_protocols))
    assert sorted({(r.model, r.data) for r in runs}) == [
        ("carlosnet", "augmented"),
        ("carlosnet", "base"),
        ("carlosnet", "base_grouped"),
        ("nn_thumb16", "base_grouped"),
    ]
    rows = {(r["comparison"], r["metric"]): r for r in paired_differences(runs)}
    aug = rows[("CarlosNet: augmented - base (random split)", "test/acc")]
    assert aug["mean"] == pytest.approx(0.8 - 0.91) and aug["n"] == 3 and aug["low"] < aug["mean"] < aug["high"]
    split = rows[("CarlosNet, base: grouped - random split", "test/acc")]
    assert split["mean"] == pytest.approx(0.72 - 0.91) and split["seeds"] == [0, 1, 2]
    md = differences_md(paired_differences(runs))
    assert "CarlosNet: augmented - base (grouped split)" in md.split("Not measured")[1]  # listed, not dropped


def test_report_shows_grouped_and_reference_rows_with_intervals(two_protocols, tmp_path):
    report = build_report(two_protocols, tmp_path / "out").read_text()
    base = md_table(report, "Base dataset")
    assert base["CarlosNet, grouped split"][0] == "n=3"
    assert base["CarlosNet, grouped split"][3] == "0.7200 ± 0.0200"
    assert base["1-NN on 16x16 thumbnails (reference), grouped split"][3] == "0.6000"
    assert "CarlosNet, grouped split, slides" not in base
    ci = md_table(report, "95% confidence intervals")
    half = t_quantile(0.975, 2) * 0.02 / math.sqrt(3)
    assert ci["CarlosNet, grouped split"][3] == f"[{0.72 - half:.4f}, {0.72 + half:.4f}]"
    rows = read_csv(tmp_path / "out" / "table_base.csv")
    (row,) = [r for r in rows if r["row"] == "CarlosNet, grouped split" and r["metric"] == "test/acc"]
    assert float(row["ci95_low"]) == pytest.approx(0.72 - half) and row["slides"] == ""
    assert "## Paired differences" in report and (tmp_path / "out" / "table_differences.csv").is_file()
    assert "missing: no run of nn_thumb16" not in report  # baselines are expected only where they ran
