"""Several processes, one run: who writes, how evaluation is split, which launches are refused.

* Rank 0 alone writes the run folder (config.yaml, metrics.json, epochs.csv; Lightning
  already saves checkpoints and logs from rank 0 only). :func:`is_rank_zero` reads the
  launcher's environment, so it answers before the process group exists.
* Evaluation is split with :class:`handgestures.data.samplers.UnpaddedDistributedBatchSampler`: every image on exactly
  one rank. Lightning's default ``DistributedSampler`` pads the shorter ranks with repeated
  images so that all ranks get the same number of batches, and the repeats would be counted
  twice in the validation accuracy, the cross-evaluation and its confusion matrices.
  Evaluation has no collective operation per step (the metrics are torchmetrics objects,
  reduced across ranks once, at ``compute``), so unequal batch counts are safe.
* ``torchrun`` starts every rank with the same command line. Hydra would give each its own
  time-stamped run folder, so ranks above 0 get a scratch folder instead
  (:func:`torchrun_overrides`) and write nothing; the checkpoint folder is rank 0's, which
  Lightning broadcasts.
* A Hydra multirun whose jobs would start their own DDP processes is refused before any job
  trains (:func:`check_launch`): Lightning relaunches the whole command line in each child
  process, the sweep included (Lightning-AI/pytorch-lightning#11300,
  ashleve/lightning-hydra-template#393). ``trainer=ddp_launch`` is not refused: its processes
  are launched by :mod:`handgestures.launch.ddp`, which re-runs no command line.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

# Environment variables that carry a process's rank, by launcher: torchrun/torch.distributed
# (RANK), Lightning's own DDP launcher (NODE_RANK + LOCAL_RANK), SLURM's srun (SLURM_PROCID,
# also set for a job of one task, where it is 0).
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")
# strategies whose processes the job launches itself (handgestures.launch.ddp); ddp_spawn: the old name
LAUNCH_STRATEGIES = ("ddp_launch", "ddp_spawn", "ddp_spawn_find_unused_parameters_true")


def global_rank(environ: Mapping[str, str] | None = None) -> int:
    """0 for a run's first process (or a process alone), else non-zero; from the environment.

    The first non-zero rank variable is returned: a process is rank 0 only when it is rank 0
    under every launcher that may have started it.
    """
    environ = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        value = environ.get(name, "0") or "0"
        if int(value) != 0:
            return int(value)
    return 0


def is_rank_zero(environ: Mapping[str, str] | None = None) -> bool:
    return global_rank(environ) == 0


def slurm_tasks(environ: Mapping[str, str] | None = None) -> bool:
    """Whether SLURM started this job's processes (a submitit job with tasks_per_node > 1)."""
    environ = os.environ if environ is None else environ
    return int(environ.get("SLURM_NTASKS", "1") or "1") > 1


def torchrun_overrides(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Hydra overrides for a rank above 0 started by torchrun: a scratch folder, no .hydra copy.

    Empty for rank 0 and outside torchrun. ``argv`` is the command line (without the
    program name); an explicit ``hydra.run.dir=`` there is kept, as every rank then agrees.
    """
    environ = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" not in environ or is_rank_zero(environ):
        return []
    extra = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    if not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in argv):
        scratch = tempfile.mkdtemp(prefix=f"handgestures-rank{global_rank(environ)}-")
        atexit.register(shutil.rmtree, scratch, True)  # nothing of the run is in it
        extra += [f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}"]
    return extra


def process_count(trainer_cfg: Mapping[str, Any]) -> int:
    """How many training processes ``trainer_cfg`` asks for (devices x nodes; "auto" is 1 on a CPU)."""
    devices, nodes = trainer_cfg.get("devices", 1), int(trainer_cfg.get("num_nodes", 1) or 1)
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        count = len(devices)
    elif isinstance(devices, int) and devices >= 0:
        count = max(1, devices)
    else:  # "auto" or -1: every device of the accelerator (a CPU counts as one)
        import torch  # devices=auto only: this module runs before torch is imported

        gpu = str(trainer_cfg.get("accelerator", "auto")) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        count = torch.cuda.device_count() if gpu else 1
    return count * nodes


MULTIRUN_DDP_REFUSAL = (
    "a multirun cannot start DDP processes itself (trainer.devices={devices}, trainer.num_nodes={nodes}: "
    "{count} processes per job): Lightning relaunches the whole command line, sweep included, in each "
    "process (Lightning-AI/pytorch-lightning#11300). Instead: sweep with trainer=ddp_launch (its processes are "
    "launched by torch's elastic launcher, no command line is re-run), run each configuration as a single run "
    "(`python train.py trainer=ddp trainer.devices={devices} ...`, or `torchrun --nproc_per_node={devices} "
    "train.py trainer=ddp ...`), or sweep on SLURM with `hydra/launcher=slurm`, whose "
    "tasks_per_node starts one process per device; or sweep with trainer.devices=1."
)


def check_launch(cfg: Mapping[str, Any], multirun: bool, environ: Mapping[str, str] | None = None) -> None:
    """Raises SystemExit (a sweep stops at once) for a launch that cannot give a sound run.

    Refused: a multirun job that would start DDP processes itself through Lightning's
    launcher (``trainer=ddp_launch`` jobs may: :mod:`handgestures.launch.ddp`). Called at the start
    of each job, before anything is trained.
    """
    trainer_cfg = cfg.get("trainer", {})
    count = process_count(trainer_cfg)
    if count <= 1:
        return
    if str(trainer_cfg.get("strategy", "auto")) in LAUNCH_STRATEGIES:
        return
    if multirun and not slurm_tasks(environ):  # under torchrun too: a sweep per rank is not supported
        raise SystemExit(
            "error: "
            + MULTIRUN_DDP_REFUSAL.format(
                devices=trainer_cfg.get("devices"), nodes=trainer_cfg.get("num_nodes", 1), count=count
            )  # fmt: skip
        )
