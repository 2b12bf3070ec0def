"""MODEL_CARD.md for a run folder, from the files the run wrote (config.yaml, metrics.json).

``write_model_card(run_dir)`` is called at the end of every training run, and can be called
again on any finished run folder. A model folder's README.md (``export.py format=hf``) is the
same card under a YAML front matter a model hub reads (:func:`hub_card`). The card gives the network and its parameter count, the
data source and split sizes, seed, epochs, precision, every evaluation set's metrics (plain
and augmented views), what the model is not good at, the command that reproduces it and the
project version.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

import handgestures
from handgestures import CONF_DIR
from handgestures.models.build import build_net
from handgestures.runfolder.stability import climbed_back, jumps_text, largest_dip, loss_jumps, read_columns

CONF = CONF_DIR
NOT_OVERRIDES = ("paths", "run_info", "hydra")  # where a run writes, not what it trains


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def _override(key: str, value: Any) -> str:
    text = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    return shlex.quote(f"{key}={text}")


def reproduce_command(run_dir: Path, config: dict[str, Any]) -> str:
    """``python train.py ...`` that trains this run again: its own overrides when Hydra kept them,
    else every value that differs from the default config of its model and data choices."""
    precision = config.get("trainer", {}).get("precision")
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        overrides = [str(o) for o in yaml.safe_load(overrides_file.read_text()) or []]
        overrides = [o for o in overrides if not o.startswith(("trainer.precision=", "hydra."))]
        return shlex.join(["python", "train.py", *overrides]) + f" trainer.precision={precision}"
    info = config.get("run_info") or {}
    model = info.get("model") or str(config["model"]["_target_"]).rsplit(".", 1)[-1].lower()
    data = info.get("data") or ("augmented" if config["data"].get("augment_train") else "base")
    args = [f"model={model}", f"data={data}"]
    try:
        default_raw, default = _default_config(args)
    except Exception:  # no conf/ next to the package (an installed wheel): the main keys only
        return shlex.join(["python", "train.py", *args]) + " " + _diff_note(config)
    mine, raw, base = _flatten(config), _flatten(default_raw), _flatten(default)
    for key in sorted(mine):
        if key.split(".")[0] in NOT_OVERRIDES or any(ref in str(raw.get(key)) for ref in ("${paths.", "${hydra:")):
            continue
        if key not in base or base[key] != mine[key]:
            args.append(_override(key, mine[key]))
    if any(k.startswith("logger.") for k in base) and not any(k.startswith("logger.") for k in mine):
        args.append("logger=none")  # conf/logger/none.yaml: the group emptied
    return " ".join(["python", "train.py", *args])


def _default_config(args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default train config of ``args`` (model, data), unresolved and resolved."""
    from hydra import compose, initialize_config_dir  # hydra's compose machinery: only when a card is written
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its own search path
        cfg = compose("train", overrides=args)
    else:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=args)
    raw = OmegaConf.to_container(cfg, resolve=False)
    with open_dict(cfg):
        cfg.paths = {"output_dir": "", "cache_dir": None}
    return raw, OmegaConf.to_container(cfg, resolve=True)


def _diff_note(config: dict[str, Any]) -> str:
    keys = {
        "seed": config.get("seed"),
        "epochs": config.get("epochs"),
        "trainer.precision": config["trainer"].get("precision"),
    }
    if config["data"].get("root"):
        keys["data.root"] = config["data"]["root"]
    return " ".join(_override(k, v) for k, v in keys.items())


def _parameter_count(model_cfg: dict[str, Any]) -> int:
    net = build_net(model_cfg)
    return sum(p.numel() for p in net.parameters())


def _hardware_lines(machine: dict[str, Any] | None) -> list[str]:
    """Where the run trained (metrics.json's ``hardware``; absent in runs from before it was recorded)."""
    if not machine:
        return []
    bf16 = "native bf16" if machine.get("cpu_native_bf16") else "no native bf16"
    gpu = f"; GPU {machine['gpu']}" if machine.get("gpu") else ""
    return [
        f"- hardware: {machine.get('cpu')} ({bf16}){gpu}; {machine.get('threads')} threads; torch {machine.get('torch')}"
    ]


def _network_lines(model_cfg: dict[str, Any]) -> list[str]:
    """The card's "Network" section: the class, its arguments and parameters, its input and output."""
    args = ", ".join(f"{k}={v}" for k, v in model_cfg.items() if k != "_target_")
    return [
        "## Network",
        f"- `{model_cfg['_target_']}`({args}): {_parameter_count(model_cfg):,} parameters",
        "- input: one 128x128 grey image, pixel/255 in [0, 1] (colour images become ITU-R 601-2 luma; "
        "other sizes are resized bilinearly: `handgestures.inference.preprocess`)",
        "- output: probabilities of 0, 1, 2, 3, 4 or 5 raised fingers",
    ]


def model_card(run_dir: str | Path) -> str:
    """The text of ``run_dir``'s model card."""
    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    metrics_all = json.loads((run_dir / "metrics.json").read_text())
    metrics = metrics_all.get("metrics") or {}
    confusion = metrics_all.get("confusion") or {}
    model_cfg, data = config["model"], config["data"]
    name = str(model_cfg["_target_"]).rsplit(".", 1)[-1]
    augmented = bool(data.get("augment_train"))
    source = (
        data.get("root")
        or f"built-in procedural hands ({data.get('builtin_size')} images, seed {data.get('builtin_seed')})"
    )
    sizes = {k: int(sum(map(sum, m))) for k, m in confusion.items()}
    plain_sets = [k for k in ("train", "val", "test") if f"{k}/acc" in metrics]
    aug_sets = [f"{k}_aug" for k in plain_sets if f"{k}_aug/acc" in metrics]
    lines = [
        f"# Model card: {name}, {'augmented' if augmented else 'base'} training, seed {config.get('seed')}",
        "",
        f"Run folder `{run_dir.name}`; status `{metrics_all.get('status')}`; handgestures {handgestures.__version__}.",
        "",
        *_network_lines(model_cfg),
        "",
        "## Data and training",
        f"- source: {source}",
        f"- split (seed {data.get('split_seed')}, stratified by class and hand, 4/6-1/6-1/6): "
        + ", ".join(f"{k} {sizes[k]:,}" for k in plain_sets if k in sizes),
        f"- training: {'Keras augmentation on every batch' if augmented else 'plain images (no augmentation)'}; "
        f"seed {config.get('seed')}; {config.get('epochs')} epochs configured, {metrics_all.get('epochs_run')} run; "
        f"batch {config.get('batch_size')}; SGD lr {config.get('optimizer', {}).get('lr')}{_clip_text(config)}; "
        f"precision {metrics_all.get('precision') or config['trainer'].get('precision')}",
        *_hardware_lines(metrics_all.get("hardware")),
        f"- best checkpoint: `{Path(metrics_all.get('best_checkpoint') or 'none').name}` "
        f"(validation accuracy {metrics_all.get('best_val_acc')})",
        "",
        "## Metrics (best checkpoint)",
        "| set | images | accuracy | loss |",
        "|---|---:|---:|---:|",
    ]
    for k in plain_sets + aug_sets:
        lines.append(f"| {k} | {sizes.get(k, '?')} | {metrics[f'{k}/acc']:.4f} | {metrics[f'{k}/loss']:.4f} |")
    if not metrics:
        lines.append("| (not evaluated: the run stopped before its evaluation) | | | |")
    lines += [
        "",
        "`*_aug`: the same images under fixed random Keras augmentations (rotation up to 90 degrees, "
        "horizontal and vertical flips, shifts, zoom), drawn from seed "
        f"{data.get('eval_view_seed')}, the same in every run.",
        "",
        *_stability_lines(run_dir, metrics_all, config, name),
        "## What it is not good at",
    ]
    if "test/acc" in metrics and "test_aug/acc" in metrics:
        plain_acc, aug_acc = metrics["test/acc"], metrics["test_aug/acc"]
        if augmented:
            lines.append(
                f"- trained on augmented hands: test accuracy {plain_acc:.4f} upright, {aug_acc:.4f} rotated/flipped"
            )
        else:
            lines.append(
                f"- rotated and flipped hands: trained on upright hands only, its test accuracy is "
                f"{plain_acc:.4f} on upright hands and {aug_acc:.4f} on rotated/flipped ones ({aug_acc - plain_acc:+.4f})"
            )
    lines += [
        "- anything unlike its training images: one hand, bright on a dark background, 128x128 grey; "
        "other backgrounds, lighting, several hands or partial hands were never seen",
    ]
    if not data.get("root"):
        lines.append("- real photos: it was trained on the built-in synthetic hands, not on photographs")
    lines += ["", "## Reproduce", "```", reproduce_command(run_dir, config), "```", ""]
    return "\n".join(lines)


def _clip_text(config: dict[str, Any]) -> str:
    """``, gradients clipped ...`` when the run clipped them (``optimizer=sgd_clipped``), else ``""``."""
    trainer = config.get("trainer") or {}
    clip = trainer.get("gradient_clip_val")
    if not clip:
        return ""
    return (f", gradients clipped at {trainer.get('gradient_clip_algorithm') or 'norm'} {clip:g} "
            "(not the slides' plain SGD)")  # fmt: skip


def _stability_lines(run_dir: Path, record: dict[str, Any], config: dict[str, Any], name: str) -> list[str]:
    """How training went: every fall to near chance (the collapse guard's record), or the largest dip.

    Why on the card: IvanNet's augmented recipe can fall to chance at some epoch, and a user who
    picks up ``last.ckpt`` after such a fall gets a network that answers one class for everything.
    """
    guard = (config.get("guards") or {}).get("collapse") or {}
    near = 1 / int(config["model"].get("num_classes", 6)) + float(guard.get("chance_margin", 0.1))
    lines = ["## Training stability"]
    collapse = record.get("collapse")
    clipped = bool((config.get("trainer") or {}).get("gradient_clip_val"))
    val_acc = read_columns(run_dir / "epochs.csv", "val/acc")
    if collapse:
        for event in collapse.get("all") or [collapse]:
            lines.append(f"- validation accuracy fell to near chance at epoch {event['epoch']}: {event['after']:.4f}, "
                         f"after a best of {event['before']:.4f} at epoch {event['best_epoch']}")  # fmt: skip
        usable = record.get("last_checkpoint_usable", True)
        back = climbed_back(val_acc, collapse, guard)
        climbed = f"it climbed back ({back[1]:.4f} at epoch {back[0]})" if back else None
        if usable:
            verdict = climbed or "it recovered"
        elif back:
            verdict = f"{climbed}, but ended well below its best, and `last.ckpt` is not the model to use"
        else:
            verdict = "it never recovered, and `last.ckpt` is not the model to use"
        lines.append(f"- the last epoch ({collapse.get('last_epoch')}) ended at {collapse.get('last', float('nan')):.4f}: "
                     f"{verdict}; the metrics above are the best checkpoint's")  # fmt: skip
        if not clipped:
            lines.append("- such falls come from a few SGD steps whose gradient norm runs away; "
                         "`optimizer=sgd_clipped` caps it (not the slides' recipe; docs/study.md)")  # fmt: skip
    else:
        fall = largest_dip(val_acc)
        dip = f"; its largest dip: {fall[1]:.4f} -> {fall[2]:.4f} at epoch {fall[0]}" if fall else ""
        lines.append(f"- validation accuracy never fell to near chance (at most {near:.3f}) after reaching "
                     f"{guard.get('min_best', 0.5)}{dip}")  # fmt: skip
    if jumps := loss_jumps(read_columns(run_dir / "epochs.csv", "train/loss")):
        lines.append(f"- the training loss jumped (epoch: before → after): {jumps_text(jumps)}; a few SGD steps "
                     "ran away there (docs/study.md)" + ("" if clipped or collapse else
                     ", and `optimizer=sgd_clipped` caps them (not the slides' recipe)"))  # fmt: skip
    if name == "IvanNet" and config["data"].get("augment_train"):
        precision = str((config.get("trainer") or {}).get("precision", ""))
        lines.append(f"- trained in {precision}: " + (
            "the default for this recipe, as the study trained it" if precision == "32-true" else
            "not the study's precision; retrain with `trainer.precision=32-true` (the default) to "
            "train as the study did"
        ) + "; runs of this recipe have fallen to chance in either precision, and its validation "
            "accuracy can spike down for an epoch (the counts: docs/study.md, 'IvanNet on the augmented data')")  # fmt: skip
    return [*lines, ""]


def write_model_card(run_dir: str | Path) -> Path:
    """Writes ``run_dir/MODEL_CARD.md`` and returns its path."""
    path = Path(run_dir) / "MODEL_CARD.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(model_card(run_dir))
    tmp.replace(path)
    return path


HUB_TAGS = ("image-classification", "pytorch", "safetensors", "handgestures", "hand-gestures", "finger-counting")
FINGERS = "koryakinp/fingers"  # the Fingers dataset's Kaggle id
HUB_METRICS = (
    ("test/acc", "test accuracy"),
    ("test_aug/acc", "test accuracy, rotated and flipped (Keras augmentation)"),
)


def hub_name(config: dict[str, Any]) -> str:
    """The model's name on a hub: ``<network>-<data>-seed<N>`` from a model folder's config.json."""
    training = config.get("training") or {}
    return f"{training.get('model')}-{training.get('data')}-seed{training.get('seed')}"


def hub_front_matter(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The YAML block a model hub reads at the top of README.md: library, tags, metric and test results.

    ``config`` is a model folder's config.json; ``metrics`` the run's metrics.json ``metrics``
    (empty when unknown: then no ``model-index``).
    """
    real = (config.get("training") or {}).get("source") not in (None, "built-in hands")
    meta: dict[str, Any] = {"library_name": "pytorch", "license": "mit", "pipeline_tag": "image-classification",
                            "tags": [*HUB_TAGS, str(config["architecture"]).lower()], "metrics": ["accuracy"]}  # fmt: skip
    measured = [{"type": "accuracy", "value": float(metrics[key]), "name": name}
                for key, name in HUB_METRICS if isinstance(metrics.get(key), (int, float))]  # fmt: skip
    if measured:
        dataset = {"name": "Fingers" if real else "built-in procedural hands (handgestures)",
                   "type": FINGERS if real else "handgestures-built-in-hands", "split": "test"}  # fmt: skip
        task = {"type": "image-classification", "name": "Image Classification"}
        meta["model-index"] = [{"name": hub_name(config), "results": [{"task": task, "dataset": dataset,
                                                                       "metrics": measured}]}]  # fmt: skip
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _card_from_config(config: dict[str, Any]) -> str:
    """A card from config.json alone, for a checkpoint exported without its run folder."""
    training, description = config.get("training") or {}, config.get("description") or {}
    return "\n".join([
        f"# Model card: {config['architecture']}, {training.get('data')} training, seed {training.get('seed')}", "",
        f"Exported from `{training.get('exported_from')}` without its run folder: the run's metrics are not known "
        f"here (`python eval.py ckpt=FOLDER` measures them); handgestures {description.get('version')}.", "",
        *_network_lines(config["net_spec"]), "",
        "## Data and training",
        f"- source: {training.get('source')}; split {description.get('split')}",
        f"- seed {training.get('seed')}; {training.get('epochs')} epochs; batch {description.get('batch_size')}; "
        f"precision {training.get('precision')}", "",
    ])  # fmt: skip


USE = """## Use

This folder holds `config.json` (the network, its input and its run), `model.safetensors` (the
weights: tensors only, no pickle) and this card, as `python export.py format=hf` writes them.
With the handgestures package (`pip install 'handgestures[export]'`):

```python
from handgestures.inference import Predictor

model = Predictor.from_pretrained("FOLDER")
probabilities = model.probabilities(images)  # images: (B, 1, 128, 128) floats, pixel / 255
```

`python predict.py ckpt=FOLDER inputs=photos/`, `python eval.py ckpt=FOLDER` and
`handgestures-demo ckpt=FOLDER` take the folder as they take the checkpoint, with the same outputs.
"""


def hub_card(config: dict[str, Any], run_dir: str | Path | None) -> str:
    """README.md of a model folder: hub front matter, the run's model card, and how to load the folder.

    ``config`` is the folder's config.json; ``run_dir`` the run folder of the exported checkpoint
    (None, or a folder without config.yaml and metrics.json: the card is made from ``config``).
    """
    run = Path(run_dir) if run_dir is not None else None
    if run is not None and (run / "config.yaml").is_file() and (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text()).get("metrics") or {}
        body = model_card(run)
    else:
        metrics, body = {}, _card_from_config(config)
    return hub_front_matter(config, metrics) + "\n" + body.rstrip("\n") + "\n\n" + USE
