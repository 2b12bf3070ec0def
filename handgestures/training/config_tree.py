"""The composed config as a tree on the console at the start of a run (``print_config: true``).

On a terminal with rich installed, a rich tree with YAML highlighting; otherwise (a log file, a
pipe, a batch job's output) plain text with ASCII guides. The tree is the config.yaml the run
saves, resolved: one branch per group (model, data, optimizer, trainer, ...), the top-level
settings first.
"""

from __future__ import annotations

import sys
from typing import IO

from omegaconf import DictConfig, ListConfig, OmegaConf

ORDER = ("model", "data", "optimizer", "trainer", "callbacks", "logger", "guards", "paths")
SETTINGS = "settings"  # the branch of the top-level scalar keys (seed, epochs, batch_size, ...)


def branches(cfg: DictConfig) -> list[tuple[str, str]]:
    """(name, YAML) per branch: the top-level settings, then the groups in ``ORDER``, then the rest."""
    scalars = {k: v for k, v in cfg.items() if not isinstance(v, (DictConfig, ListConfig))}
    nested = [k for k in cfg if k not in scalars]
    names = [k for k in ORDER if k in nested] + [k for k in nested if k not in ORDER]
    out = [(SETTINGS, OmegaConf.to_yaml(OmegaConf.create(scalars)))] if scalars else []
    for name in names:
        node = cfg[name]
        text = OmegaConf.to_yaml(node, resolve=True) if node else "{}\n"
        out.append((name, text))
    return out


def plain_tree(cfg: DictConfig, title: str = "config") -> str:
    """The tree in ASCII: ``+-- group`` and the group's YAML indented under it."""
    lines = [title]
    items = branches(cfg)
    for i, (name, text) in enumerate(items):
        last = i == len(items) - 1
        lines.append(f"{'`' if last else '+'}-- {name}")
        lines += [f"{' ' if last else '|'}     {line}".rstrip() for line in text.rstrip("\n").splitlines()]
    return "\n".join(lines)


def print_config_tree(cfg: DictConfig, title: str = "config", stream: IO[str] | None = None) -> None:
    """Prints the resolved config as a tree: rich on a terminal, plain text elsewhere."""
    stream = stream or sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    if tty:
        try:
            from rich.console import Console  # optional: without rich, plain text
            from rich.syntax import Syntax
            from rich.tree import Tree
        except ImportError:
            tty = False
    if not tty:
        print(plain_tree(cfg, title), file=stream, flush=True)
        return
    tree = Tree(f"[bold]{title}[/bold]", guide_style="dim")
    for name, text in branches(cfg):
        tree.add(f"[bold cyan]{name}[/bold cyan]").add(Syntax(text.rstrip("\n"), "yaml", theme="ansi_dark"))
    Console(file=stream).print(tree)
