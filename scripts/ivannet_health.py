"""Training health of finished or running IvanNet runs, recomputed from their checkpoints, and at initialisation.

The same measurements as ``handgestures.training.health`` (dead ReLU units per layer on the
first 64 validation images, the largest absolute logit), for runs that kept one checkpoint per
epoch (``scripts/ivannet_grid.sh`` keeps them under ``checkpoints/epochs/``), so runs made
before the health callback existed can be read layer by layer; and, with ``--init``, for the
network as a run initialises it (seed, precision), with the gradient norm of each layer on the
first training batch: why IvanNet starts on the ln 6 plateau.

    python scripts/ivannet_health.py epochs RUN_DIR [RUN_DIR ...] --out CSV
    python scripts/ivannet_health.py init --data DATA --seeds 0 1 2 --out CSV
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handgestures.inference.evaluate import datamodule_for  # noqa: E402
from handgestures.training.checkpoint import load_module  # noqa: E402
from handgestures.training.health import dead_fractions, layer_names  # noqa: E402

PROBE = 64


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if str(precision).startswith("bf16") else nullcontext()


def probe_of(description: dict, root: str | None) -> torch.Tensor:
    dm = datamodule_for(description, root)
    dm.setup("fit")
    batch = dm.splits["val"][list(range(PROBE))]
    x, _ = dm.prepare_batch(batch, training=False)
    return x


def epochs_rows(run: Path) -> list[dict]:
    files = sorted((run / "checkpoints" / "epochs").glob("step*.ckpt"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    rows, probe = [], None
    for i, file in enumerate(files, start=1):
        module, description = load_module(file)
        if probe is None:
            probe = probe_of(description, (description.get("data") or {}).get("root"))
        _, relus = layer_names(module.net)
        with autocast(description.get("precision", "32-true")):
            dead, max_logit = dead_fractions(module.net, relus, probe)
        rows.append(
            {
                "run": run.name,
                "epoch": i,
                "step": int(re.sub(r"\D", "", file.stem)),
                **{f"dead/{k}": round(v, 4) for k, v in dead.items()},
                "max_abs_logit": round(max_logit, 4),
            }
        )
    return rows


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from handgestures import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/ivannet-health-init"  # nothing is written there
    return cfg


def init_rows(data: str, seeds: list[int], precisions: list[str]) -> list[dict]:
    """At initialisation, as ``python train.py model=ivannet data=augmented seed=S`` builds the network."""
    from handgestures.training.train import build_run

    rows = []
    for seed in seeds:
        for precision in precisions:
            cfg = compose(["model=ivannet", "data=augmented", f"seed={seed}", f"data.root={data}",
                           f"trainer.precision={precision}", "logger=none"])  # fmt: skip
            datamodule, module, _ = build_run(cfg)
            datamodule.setup("fit")
            net = module.net
            params, relus = layer_names(net)
            probe = datamodule.prepare_batch(datamodule.splits["val"][list(range(PROBE))], training=False)[0]
            with autocast(precision):
                dead, max_logit = dead_fractions(net, relus, probe)
            batch = next(iter(datamodule.train_dataloader()))
            x, y = datamodule.prepare_batch(batch, training=True)
            net.zero_grad()
            with autocast(precision):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            row = {"seed": seed, "precision": precision, "loss": round(float(loss), 5),
                   "logit_std": round(float(logits.float().std()), 5), "max_abs_logit": round(max_logit, 5),
                   **{f"dead/{k}": round(v, 4) for k, v in dead.items()}}  # fmt: skip
            for name, ps in params.items():
                grad = math.sqrt(sum(float(p.grad.float().pow(2).sum()) for p in ps))
                weight = math.sqrt(sum(float(p.detach().float().pow(2).sum()) for p in ps))
                row[f"grad_norm/{name}"] = round(grad, 6)
                row[f"update_ratio/{name}"] = round(float(cfg.optimizer.lr) * grad / weight, 8)  # |lr*g| / |w|
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ep = sub.add_parser("epochs")
    ep.add_argument("runs", nargs="+", type=Path)
    ep.add_argument("--out", type=Path, required=True)
    it = sub.add_parser("init")
    it.add_argument("--data", required=True)
    it.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    it.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    it.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    if args.what == "epochs":
        for run in args.runs:
            rows += epochs_rows(run)
    else:
        rows = init_rows(args.data, args.seeds, args.precisions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
