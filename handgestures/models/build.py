"""A network from its spec: the ``_target_`` of a ``model`` config and its arguments.

Checkpoints carry the spec (``net_spec``), so a trained model is rebuilt from data alone; only
classes of :mod:`handgestures.models` are built, never an arbitrary ``_target_`` a file names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from handgestures.errors import CheckpointError

ALLOWED_NET_PACKAGE = "handgestures.models"


def build_net(spec: Mapping[str, Any]) -> nn.Module:
    """The network of ``spec`` (``_target_`` + arguments); only classes of handgestures.models."""
    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not isinstance(target, str) or not target.startswith(ALLOWED_NET_PACKAGE + "."):
        raise CheckpointError(
            f"network _target_ {target!r} is not allowed: expected a class of {ALLOWED_NET_PACKAGE} "
            "(for example handgestures.models.CarlosNet)"
        )
    module_name, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"network _target_ {target!r} does not exist: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"network _target_ {target!r} is not an nn.Module class")
    return cls(**{k: v for k, v in spec.items() if not k.startswith("_")})
