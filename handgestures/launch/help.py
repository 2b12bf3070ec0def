"""``python train.py --help``: the project's own help, printed before torch or Lightning is imported.

Standard library only, so that the help appears at once: usage examples, the config groups
with their choices (read from ``conf/``, with the first comment line of each file), the
top-level settings of ``conf/train.yaml``, and where the outputs go. Hydra's own help stays
available as ``--hydra-help``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HELP_FLAGS = ("--help", "-h")
INTERNAL_GROUPS = ("hydra", "paths")  # wiring, not choices a user makes

USAGE = """\
usage: python train.py [KEY=VALUE ...] [GROUP=CHOICE ...]
       python train.py -m GROUP=A,B KEY=X,Y ...     (a sweep: one run per combination)

Trains one network of the CarlosNet / IvanNet finger-counting study and cross-evaluates
its best checkpoint. Settings are Hydra overrides; every value can be changed on the
command line.

examples:
  python train.py                                   CarlosNet on the base data ({base} epochs)
  python train.py model=ivannet data=augmented      IvanNet, augmented training ({augmented} epochs)
  python train.py data.root=PATH/TO/fingers/train   on the real Fingers images
  python train.py epochs=3 trainer.limit_train_batches=20   a quick look
  python train.py -m experiment=study               the whole study: 2 models x 2 data x 3 seeds
  python train.py --cfg job                         print the composed config and exit
  python train.py debug=limit                       a quick check (debug=default, fdr, overfit, profiler)
  python train.py logger=mlflow                     also into outputs/mlflow.db (wandb, csv, many)
  handgestures-report outputs/sweeps/STAMP          the study's tables from a sweep's runs
"""

FOOTER = """\
outputs: outputs/runs/MODEL-DATA-seedN-STAMP/ (a sweep: outputs/sweeps/STAMP/...) holds
config.yaml, metrics.json, epochs.csv, checkpoints/ and tensorboard/
(`tensorboard --logdir outputs`).
more: README.md; `handgestures --help`: every command; Hydra's own help: python train.py --hydra-help
"""


def first_comment(path: Path, width: int = 76) -> str:
    """The first sentence of a YAML file's opening comment, cut to ``width``; '' when there is none."""
    text = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# @package"):
            continue
        if not stripped.startswith("#"):
            break
        text.append(stripped.lstrip("#").strip())
    sentence = re.split(r"(?<=\.)\s", " ".join(text), maxsplit=1)[0]
    return sentence if len(sentence) <= width else sentence[: width - 3].rsplit(" ", 1)[0] + " ..."


def defaults(train_yaml: Path) -> dict[str, str]:
    """``group: choice`` of the defaults list of conf/train.yaml."""
    found = {}
    for match in re.finditer(r"^\s+-\s+([a-z_]+):\s*([A-Za-z0-9_]+)", train_yaml.read_text(), flags=re.MULTILINE):
        found[match[1]] = match[2]
    return found


def settings(train_yaml: Path) -> list[tuple[str, str, str]]:
    """Top-level ``key: value  # comment`` lines of conf/train.yaml (after its defaults list)."""
    rows = []
    for line in train_yaml.read_text().splitlines():
        match = re.match(r"^([a-z_]+):\s*([^#\n]*?)\s*(?:#\s*(.*))?$", line)
        if match and match[1] != "defaults" and match[2]:
            rows.append((match[1], match[2], match[3] or ""))
    return rows


def variant_epochs(data_yaml: Path) -> str:
    """The top-level ``epochs:`` a data variant sets (conf/data/*.yaml), or "?"."""
    found = re.search(r"^epochs:\s*(\d+)", data_yaml.read_text(), flags=re.MULTILINE)
    return found[1] if found else "?"


def render(conf: Path) -> str:
    train_yaml = conf / "train.yaml"
    chosen = defaults(train_yaml)
    epochs = {v: variant_epochs(conf / "data" / f"{v}.yaml") for v in ("base", "augmented")}
    usage = USAGE.format(**epochs)
    lines = [usage, "config groups (GROUP=CHOICE; * = the default):"]
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in INTERNAL_GROUPS):
        choices = sorted(f.stem for f in group.glob("*.yaml"))
        default = chosen.get(group.name)
        lines.append(f"  {group.name}: " + ", ".join(f"{c}*" if c == default else c for c in choices))
        for choice in choices:
            note = first_comment(group / f"{choice}.yaml")
            if note:
                lines.append(f"      {choice:<12} {note}")
    lines += ["", "settings (KEY=VALUE; nested ones too, e.g. optimizer.lr=0.05 data.batch_size=64):"]
    rows = settings(train_yaml)
    variants = ", ".join(f"{v} {n}" for v, n in epochs.items())
    rows.insert(1, ("epochs", "N", f"set by the data variant ({variants}); `epochs=3` overrides"))
    for key, value, note in rows:
        lines.append(f"  {key + '=' + value:<28} {note}".rstrip())
    lines += ["", FOOTER]
    return "\n".join(lines)


def maybe_print_help(argv: list[str], conf: Path) -> None:
    """Prints the help and exits when ``argv`` asks for it (``--help``/``-h``)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(render(conf))
        sys.exit(0)
