"""Figures shared by training (TensorBoard images) and the report (PNG files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display needed, and no GUI backend is ever picked up
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

CLASS_NAMES = [str(i) for i in range(6)]


def confusion_figure(matrix: torch.Tensor | Sequence[Sequence[int]], title: str = "") -> plt.Figure:
    """A confusion matrix (rows: true fingers, columns: predicted) with counts in the cells."""
    m = torch.as_tensor(matrix)
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=110)
    ax.imshow(m.numpy(), cmap="Blues")
    n = m.shape[0]
    ax.set_xticks(range(n), CLASS_NAMES[:n])
    ax.set_yticks(range(n), CLASS_NAMES[:n])
    ax.set_xlabel("predicted fingers")
    ax.set_ylabel("true fingers")
    threshold = float(m.max()) / 2
    for i in range(n):
        for j in range(n):
            value = int(m[i, j])
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")  # fmt: skip
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def curves_figure(rows: Sequence[Mapping[str, float]], title: str = "") -> plt.Figure:
    """The study's learning curves: accuracy and loss per epoch, train vs val, side by side."""
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for ax, metric, label in zip(axes, ("acc", "loss"), ("accuracy", "loss"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            ax.plot(epochs, [float(r[f"{split}/{metric}"]) for r in rows], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def seeds_figure(runs: Sequence, title: str) -> plt.Figure:
    """Learning curves of several seeds overlaid: train solid, val dashed, one colour per seed.

    ``runs``: objects with ``seed`` and ``epochs`` (epochs.csv rows), like ``report.Run``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for i, run in enumerate(r for r in runs if r.epochs):
        epochs = [int(row["epoch"]) for row in run.epochs]
        for ax, metric in zip(axes, ("acc", "loss"), strict=True):
            for split, style in (("train", "-"), ("val", "--")):
                ax.plot(epochs, [row[f"{split}/{metric}"] for row in run.epochs], style, marker="o", ms=3,
                        color=f"C{i % 10}", label=f"seed {run.seed}" if split == "train" else None)  # fmt: skip
    for ax, label in zip(axes, ("accuracy", "loss"), strict=True):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path)
    plt.close(fig)
