"""``trainer=ddp_spawn``: DDP whose processes are spawned from this one, each running the whole job.

Lightning's own ``ddp_spawn`` strategy runs only ``fit`` (and then ``test``) in the spawned
processes and hands back the weights and the best checkpoint's path; everything else a run
records (epochs run, the guards' verdicts, the cross-evaluation's confusion matrices) would
stay in the children. So this module spawns the processes one level up instead: each child
runs the same job as a rank started by torchrun or by Lightning's ``ddp`` launcher (DDP,
gloo on CPUs, every image evaluated once, rank 0 writing the run folder), and the parent,
which composed the configuration, waits, forwards SIGINT/SIGTERM, and returns rank 0's
result. Nothing re-runs the command line, so a Hydra multirun of ``ddp_spawn`` jobs works
(the case that breaks with in-process ``ddp``, see :mod:`handgestures.distributed`).

The children start with the ``spawn`` method (a fresh interpreter: no fork of a process with
threads) and find each other through ``MASTER_ADDR``/``MASTER_PORT`` on this machine, as
Lightning's launcher's children do (``LOCAL_RANK`` tells Lightning the processes exist already).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import logging.config
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures import run_record as rr
from handgestures.distributed import SPAWN_STRATEGIES
from handgestures.errors import UserError
from handgestures.lifecycle import Interrupted

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def wants_spawn(trainer_cfg: Any) -> bool:
    """Whether the job asks for spawned DDP processes (Lightning's spawn strategies)."""
    return str(trainer_cfg.get("strategy", "auto")) in SPAWN_STRATEGIES


class SpawnedJobFailed(UserError):
    """A spawned process failed; its own message is in its log and the run folder's failed.json."""

    def __init__(self, rank: int, exit_code: int, folder: Path) -> None:
        self.exit_code = rr.EXIT_ERROR
        details = folder / rr.FAILED_FILE
        where = f"details: {details}" if details.is_file() else f"its log is in {folder}"
        super().__init__(f"DDP process of rank {rank} exited with code {exit_code}; {where}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_spawned(cfg: DictConfig, processes: int, job_logging: Any, started_at: float) -> dict[str, float]:
    """Runs the job in ``processes`` spawned DDP processes; returns rank 0's final metrics.

    Raises :class:`~handgestures.lifecycle.Interrupted` when a forwarded signal stopped the
    run (exit code 130/143 in every child), :class:`SpawnedJobFailed` for any other failure.
    """
    import torch.multiprocessing as mp

    if "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        raise UserError(
            "trainer=ddp_spawn starts its own processes, but this one was started by a launcher of several "
            "(torchrun, srun or Lightning's ddp): use trainer=ddp there"
        )
    import torch

    folder = Path(cfg.paths.output_dir)
    spec = {
        "config": OmegaConf.to_container(cfg, resolve=True),  # the children have no Hydra to resolve ${hydra:...}
        "logging": job_logging,
        "processes": processes,
        "port": _free_port(),
        "threads": torch.get_num_threads(),
        "started_at_wall": time.time() - (time.perf_counter() - started_at),
    }
    log.info("ddp_spawn: starting %d processes (threads each: %d)", processes, spec["threads"])
    context = mp.start_processes(_child, args=(spec,), nprocs=processes, join=False, start_method="spawn")
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if received:  # a second signal: stop the children at once
            for process in context.processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            return
        received.append(signum)
        print(f"\n{signal.Signals(signum).name} received: the DDP processes stop at the end of this batch",
              file=sys.stderr)  # fmt: skip
        for process in context.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                if context.join(timeout=0.5):
                    break
            except mp.ProcessExitedException as err:
                raise _failure(err.error_index, err.exit_code, received, folder) from None
            except mp.ProcessRaisedException as err:  # an unexpected error: its traceback goes to the log
                log.error("DDP process of rank %d failed:\n%s", err.error_index, err)
                raise _failure(err.error_index, rr.EXIT_ERROR, received, folder) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:  # the children finished their batch and stopped cleanly (exit 0 is not expected)
        raise Interrupted(received[0])
    record = json.loads((folder / rr.METRICS_FILE).read_text())
    return {k: float(v) for k, v in (record.get(rr.KEY_METRICS) or {}).items()}


def _failure(rank: int, exit_code: int, received: list[int], folder: Path) -> Exception:
    if received or exit_code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return Interrupted(received[0] if received else exit_code - 128)
    return SpawnedJobFailed(rank, exit_code, folder)


def _child(rank: int, spec: dict[str, Any]) -> None:
    """One spawned process: its rank's environment, logging and threads, then the job."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which forwards it once
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # the parent killed: stop cleanly
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]), WORLD_SIZE=str(spec["processes"]),
        LOCAL_RANK=str(rank), NODE_RANK="0", HANDGESTURES_SPAWNED="1",
    )  # fmt: skip
    if spec["logging"]:
        config = json.loads(json.dumps(spec["logging"]))  # a copy
        for handler in (config.get("handlers") or {}).values():
            if rank and "filename" in handler:  # as Lightning's launcher names its children's logs
                handler["filename"] = handler["filename"].removesuffix(".log") + f"_ddp_process_{rank}.log"
        logging.config.dictConfig(config)
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from handgestures.cli import run_rank

    cfg = OmegaConf.create(spec["config"])
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp"
    started_at = time.perf_counter() - (time.time() - spec["started_at_wall"])
    sys.exit(run_rank(cfg, started_at))
