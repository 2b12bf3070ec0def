"""The first line of ``python train.py`` (and ``handgestures train``), before torch and Lightning load.

:func:`handgestures.say_loading`, for a command line that runs a job: not for Hydra's flags
that only print (``--cfg``, ``--info``, ...; ``--help`` exits earlier), and on rank 0 only, so
that a DDP or torchrun launch prints it once. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from handgestures import say_loading
from handgestures.launch.outdir import NO_JOB_FLAGS
from handgestures.launch.ranks import is_rank_zero


def say_loading_for_job(command: str, argv: Sequence[str]) -> bool:
    """``COMMAND: loading PyTorch and Lightning (a few seconds) ...`` on stderr; returns whether it was printed."""
    if any(a in NO_JOB_FLAGS for a in argv) or not is_rank_zero():
        return False
    return say_loading(command, "PyTorch and Lightning")
