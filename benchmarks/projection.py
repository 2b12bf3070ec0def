"""``projection``: the full study's wall time from the measured rates, and the contention verdict.

Per run: warm start-up + epochs x (train split / train rate + val split / inference rate +
two checkpoint saves) + the 6-set cross-evaluation; for the split sizes of the data used and
for the study's 21,600 images; per precision, and for each assignment of a precision to
each model.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from benchmarks.common import ROOT, STUDY_EPOCHS, STUDY_SPLIT


def projection(train: dict[str, Any], startup_s: float | None, precision: str, models, variants,
               split: dict[str, int] | None) -> dict[str, Any] | None:  # fmt: skip
    """Wall time of the full study from measured rates; None when a rate is missing."""
    runs, total = {}, 0.0
    for model in models:
        for variant in variants:
            r = train.get(f"{model}/{variant}/{precision}") or {}
            rates = [r.get("train_images_per_s"), r.get("infer_images_per_s"), r.get("infer_aug_images_per_s")]
            if "error" in r or not r or not all(rates):
                return None
            sizes = split or r["splits"]
            epochs = STUDY_EPOCHS[variant]
            per_epoch = (sizes["train"] / r["train_images_per_s"] + sizes["val"] / r["infer_images_per_s"]
                         + 2 * r["checkpoint_save_s"])  # fmt: skip
            n_all = sizes["train"] + sizes["val"] + sizes["test"]
            cross = n_all / r["infer_images_per_s"] + n_all / r["infer_aug_images_per_s"]
            seconds = (startup_s or 0.0) + epochs * per_epoch + cross
            runs[f"{model}/{variant}"] = {"epochs": epochs, "epoch_s": round(per_epoch, 1),
                                          "cross_eval_s": round(cross, 1), "total_s": round(seconds, 1)}  # fmt: skip
            total += seconds
    return {"split": split or "measured", "runs": runs, "total_s": round(total, 1), "total_min": round(total / 60, 1)}


def mixed_projections(train: dict[str, Any], startup_s: float | None, args: argparse.Namespace) -> dict[str, Any]:
    """Study totals (minutes) for every assignment of a precision to each model."""
    out: dict[str, Any] = {}
    for combo in itertools.product(args.precisions, repeat=len(args.models)):
        label = ",".join(f"{m}={q}" for m, q in zip(args.models, combo))
        totals = {}
        for split_name, split in (("measured_split", None), ("study_21600", STUDY_SPLIT)):
            parts = [projection(train, startup_s, q, [m], args.variants, split) for m, q in zip(args.models, combo)]
            totals[f"{split_name}_min"] = round(sum(p["total_s"] for p in parts) / 60, 1) if all(parts) else None
        out[label] = totals
    return out


def contention_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The most cores other processes used around any measurement, and a verdict."""
    seen: dict[str, float] = {}

    def visit(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            busy = [b for b in node.get("other_busy_cores") or [] if b is not None]
            if busy:
                seen[prefix] = max(busy)
            for key, value in node.items():
                visit(f"{prefix}/{key}" if prefix else key, value)

    visit("", report)
    worst = max(seen.values(), default=None)
    quiet = worst is not None and worst < 0.25
    return {
        "max_other_busy_cores": worst,
        "quiet": quiet,
        "note": "quiet machine: figures are comparable"
        if quiet
        else "other processes were using the CPU: throughput figures (ours far more than Keras') are depressed",
        "busiest": sorted(seen.items(), key=lambda kv: -kv[1])[:5],
    }


def default_precision() -> dict[str, str]:
    """The configured default precision and what it resolves to on this machine."""
    import yaml

    from handgestures.runtime import resolve_precision

    trainer = yaml.safe_load((ROOT / "conf" / "trainer" / "default.yaml").read_text())
    configured = str(trainer.get("precision"))
    return {"configured": configured, "resolved": resolve_precision(configured, trainer.get("accelerator", "auto"))}
