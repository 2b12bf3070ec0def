"""The console of a run: the framework's noise off, so what is left is the project's own output.

Silenced, each for a stated reason: Lightning's advertising "Tip:" lines (litlogger,
litmodels); its warning that the model summary cannot size bf16-mixed weights (the summary
then counts them as fp32, which is what they are: only activations run in bf16); and the
deprecation of ``LeafSpec`` raised inside Lightning's own code, which a user cannot act on;
and, under DDP, the advice to log with ``sync_dist=True``: every epoch-level value the module
logs is already reduced over the processes (torchmetrics at ``compute``, the training sums by
one all-reduce), so syncing again would only cost time.
Everything else, Lightning's warnings included, still reaches the console.
"""

from __future__ import annotations

import logging
import warnings

ADVERT_PREFIX = "💡 Tip:"
SILENCED_WARNINGS = (
    r"Precision bf16-mixed is not supported by the model summary",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
    r"It is recommended to use `self.log\('[^']*', \.\.\., sync_dist=True\)`",
)
# rank_zero_info of Lightning (and of Fabric, whichever imported last) logs through these
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERT_PREFIX)


def quiet_framework_noise() -> None:
    """Installs the filters (idempotent)."""
    for message in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropAdverts) for f in logger.filters):
            logger.addFilter(DropAdverts())
