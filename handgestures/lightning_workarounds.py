"""Workarounds for Lightning internals, each named and kept only while a benchmark shows it pays.

``FastHookName``: Lightning sets ``LightningModule._current_fx_name`` around every hook it
calls, about 40 times per training step. ``nn.Module.__setattr__`` first checks every
assigned value against the module's parameters, buffers and submodules; a hook name (a str
or None) can be none of those, so the mixin stores it directly, as ``nn.Module`` would after
its checks. Any other attribute goes through ``nn.Module`` unchanged.

``python benchmarks/hook_name.py`` times whole Lightning training iterations of CarlosNet
with and without the mixin, in alternation; its figures are in docs/performance.md. Delete
the mixin (and the benchmark) when Lightning stops setting the name per hook, or when the
benchmark shows no gain.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["FastHookName"]

HOOK_NAME_ATTRIBUTE = "_current_fx_name"  # lightning.pytorch.core.module.LightningModule


class FastHookName(nn.Module):
    """Mixin for a LightningModule: store Lightning's per-hook name without nn.Module's checks."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE and (value is None or isinstance(value, str)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
