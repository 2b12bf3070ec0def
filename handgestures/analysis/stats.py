"""Statistics that fit a few seeds: t intervals of means, paired differences, and the split protocols.

With three seeds a mean ± std says little about where the mean lies, so every mean gets a
95% confidence interval from Student's t with n-1 degrees of freedom (seeds assumed to be
independent draws; the interval is wide on purpose: t(0.975, 2) = 4.30), clipped to the
metric's range (an accuracy interval stops at 1, a loss interval at 0). The study's
conclusions rest on differences, so those are computed paired by seed (the same seed seeds
the weights and the shuffle of both runs): augmented minus base on the augmented views,
IvanNet minus CarlosNet, and the grouped split minus the random one.

Runs on the grouped split (``data.split=grouped`` in their config) are told apart by
``tag_protocols``: their data label gets the suffix ``_grouped`` (``base_grouped``), so
every report table keeps them in rows of their own. Runs of a grouped K-fold cross-validation
(``data.folds=K``) get ``_cvK`` (``base_cv5``); their replicates are the folds (and seeds), the
paired differences are taken fold by fold, and the interval of a mean over folds is the
corrected resampled t interval of Nadeau and Bengio (2003): the folds' training sets overlap,
so the variance of the mean is s^2 (1/n + n_test/n_train) rather than s^2/n, with n - 1
degrees of freedom.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from handgestures.analysis.study import MODELS
from handgestures.data.grouping import SPLIT_KINDS

CONFIDENCE = 0.95
PROTOCOLS = tuple(SPLIT_KINDS)  # data.split values; random is the study's
GENERALISATION_KEYS = ("train_aug/acc", "val_aug/acc", "test_aug/acc")


def _t_density(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(x: float, df: int, steps: int = 4000) -> float:
    """Student's t distribution function (Simpson's rule on the density; no SciPy needed)."""
    if x < 0:
        return 1 - t_cdf(-x, df, steps)
    h = x / steps
    total = _t_density(0, df) + _t_density(x, df)
    total += sum((4 if i % 2 else 2) * _t_density(i * h, df) for i in range(1, steps))
    return 0.5 + total * h / 3


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on t_cdf)."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def mean_ci(
    values: Iterable[float | None],
    confidence: float = CONFIDENCE,
    bounds: tuple[float | None, float | None] = (None, None),
    test_train_ratio: float = 0.0,
) -> dict[str, Any]:
    """Mean, sample std, n and the t interval of the mean of the finite ``values`` (None bounds with n < 2).

    ``bounds`` clips the interval to the values' possible range (accuracies: 0 to 1);
    ``test_train_ratio`` (n_test / n_train of one fold) widens it for cross-validation folds.
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    out: dict[str, Any] = {"mean": statistics.fmean(xs) if xs else None, "std": None, "n": len(xs),
                           "low": None, "high": None}  # fmt: skip
    if len(xs) > 1:
        std = statistics.stdev(xs)
        # test_train_ratio > 0: cross-validation folds, Nadeau and Bengio's correction for overlapping training sets
        half = t_quantile(0.5 + confidence / 2, len(xs) - 1) * std * math.sqrt(1 / len(xs) + test_train_ratio)
        low, high = out["mean"] - half, out["mean"] + half
        low, high = (
            (low if bounds[0] is None else max(low, bounds[0])),
            (high if bounds[1] is None else min(high, bounds[1])),
        )
        out.update(std=std, low=low, high=high)
    return out


def paired_difference(a: dict[Any, float], b: dict[Any, float], confidence: float = CONFIDENCE,
                      test_train_ratio: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """``a - b`` over the keys (seeds, or (seed, fold) pairs) both have: mean, t interval, n, and the keys paired."""
    seeds = sorted(k for k in set(a) & set(b) if a[k] is not None and b[k] is not None)
    return {**mean_ci([a[s] - b[s] for s in seeds], confidence, test_train_ratio=test_train_ratio), "seeds": seeds}


# ---------------------------------------------------------------------------- protocols


def split_of(run) -> str:
    """``random``, ``grouped`` or ``cvK``: metrics.json's ``split`` (and ``folds``), else the saved config's."""
    return folder_split(run.folder, run.info)


def protocols(runs: list) -> list[str]:
    """The split protocols of ``runs``' data labels: random and grouped, then each ``cvK`` found."""
    found = sorted({r.data.rsplit("_", 1)[1] for r in runs if "_cv" in r.data}, key=lambda p: int(p[2:]))
    return [*PROTOCOLS, *found]


def cv_ratio(data: str) -> float:
    """n_test / n_train of one fold of a ``_cvK`` data label (test n/K, validation n/6, training the rest); 0 otherwise."""
    if "_cv" not in data:
        return 0.0
    k = int(data.rsplit("_cv", 1)[1])
    return (1 / k) / (1 - 1 / k - 1 / 6)


def folder_split(folder: Path, info: dict[str, Any] | None = None) -> str:
    """The split protocol of the run in ``folder`` (``info``: its metrics.json, if read)."""
    if info and info.get("folds"):
        return f"cv{int(info['folds'])}"
    if info and info.get("split"):
        return str(info["split"])
    for config in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if config.is_file():
            saved = OmegaConf.load(config)
            folds = OmegaConf.select(saved, "data.folds")
            return f"cv{int(folds)}" if folds else str(OmegaConf.select(saved, "data.split") or "random")
    return "random"


def data_label(data: str, protocol: str) -> str:
    return data if protocol == PROTOCOLS[0] else f"{data}_{protocol}"


def tag_protocols(runs: list) -> list:
    """The same runs, with ``_<split>`` appended to the data label of runs not on the random split."""
    for run in runs:
        protocol = split_of(run)
        if protocol != PROTOCOLS[0] and not run.data.endswith(f"_{protocol}"):
            run.data = data_label(run.data, protocol)
    return runs


def baseline_label(model: str) -> str:
    if model.startswith("nn_thumb"):
        return f"1-NN on {model.removeprefix('nn_thumb')}x{model.removeprefix('nn_thumb')} thumbnails (reference)"
    return {"brightness_area": "brightness and area (reference)"}.get(model, f"{model} (reference)")


def extra_rows(rows: Sequence[tuple[str, str, str]], runs: list) -> list[tuple[str, str, str]]:
    """Rows a study table gains from ``runs``: the study's rows on the grouped split, then reference baselines."""
    present = {(r.model, r.data) for r in runs}
    names = {
        p: (f"grouped {p[2:]}-fold cross-validation" if p.startswith("cv") else f"{p} split") for p in protocols(runs)
    }
    extra = [(f"{label}, {names[p]}", model, data_label(data, p)) for p in protocols(runs)[1:]
             for label, model, data in rows if (model, data_label(data, p)) in present]  # fmt: skip
    datas = list(dict.fromkeys(d for _, _, d in rows))
    for p in protocols(runs):
        for model in sorted({m for m, _ in present} - set(MODELS)):
            extra += [(baseline_label(model) + ("" if p == PROTOCOLS[0] else f", {names[p]}"), model, data_label(d, p))
                      for d in datas if (model, data_label(d, p)) in present]  # fmt: skip
    return extra


# ---------------------------------------------------------------------------- differences


def _by_seed(runs: list, model: str, data: str, key: str) -> dict[Any, float]:
    done = [r for r in runs if r.model == model and r.data == data and r.status == "done" and r.seed is not None]
    return {getattr(r, "replicate", r.seed): r.metrics.get(key) for r in done}  # under cross-validation: per fold


def paired_differences(runs: list) -> list[dict[str, Any]]:
    """Every comparison the study's conclusions rest on, paired by seed, with its t interval."""
    out = []
    models = [m for m in MODELS if any(r.model == m for r in runs)]

    def add(what: str, a: tuple[str, str], b: tuple[str, str], keys: Sequence[str]) -> None:
        for key in keys:
            diff = paired_difference(_by_seed(runs, *a, key), _by_seed(runs, *b, key), test_train_ratio=cv_ratio(a[1]))
            out.append({"comparison": what, "metric": key, "a": "-".join(a), "b": "-".join(b), **diff})

    for p in protocols(runs):
        base, aug = data_label("base", p), data_label("augmented", p)
        for m in models:
            add(f"{MODELS[m]}: augmented - base ({p} split)", (m, aug), (m, base), (*GENERALISATION_KEYS, "test/acc"))
        for data in (base, aug):
            if len(models) > 1:
                add(f"IvanNet - CarlosNet, {data.split('_')[0]} ({p} split)", ("ivannet", data), ("carlosnet", data),
                    ("test/acc", "test_aug/acc"))  # fmt: skip
    for m in models:
        for data in ("base", "augmented"):
            add(f"{MODELS[m]}, {data}: grouped - random split", (m, data_label(data, "grouped")), (m, data),
                ("test/acc", "test_aug/acc"))  # fmt: skip
    return out


def differences_md(rows: list[dict[str, Any]]) -> str:
    """Markdown table of ``paired_differences``; comparisons without a paired seed are listed, not dropped."""

    def f(v):
        return "—" if v is None else f"{v:+.4f}"

    shown = [r for r in rows if r["n"] > 0]
    lines = ["| comparison | metric | mean difference | 95% t interval | n (seeds) |", "|---|---|---|---|---|"]
    lines += [f"| {r['comparison']} | {r['metric']} | {f(r['mean'])} | "
              + (f"[{f(r['low'])}, {f(r['high'])}]" if r["low"] is not None else "— (n=1)")
              + f" | {r['n']} ({', '.join(map(str, r['seeds']))}) |" for r in shown]  # fmt: skip
    missing = sorted({r["comparison"] for r in rows if r["n"] == 0})
    text = "\n".join(lines) if shown else "No comparison has a pair of runs with the same seed."
    if missing:
        text += "\n\nNot measured (no pair of evaluated runs with the same seed): " + "; ".join(missing) + "."
    return text
