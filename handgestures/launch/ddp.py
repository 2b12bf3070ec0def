"""``trainer=ddp_launch``: a job that launches its own DDP processes, each running the whole job.

Lightning's ``ddp_spawn`` strategy runs only ``fit`` (and then ``test``) in the spawned
processes and hands back the weights and the best checkpoint's path; everything else a run
records (epochs run, the guards' verdicts, the cross-evaluation's confusion matrices) would
stay in the children. So the processes are started one level up instead, by torch's own
launcher (:func:`torch.distributed.launcher.api.elastic_launch`, the engine inside
``torchrun``): each runs the same job as a rank started by ``torchrun`` (DDP, gloo on CPUs,
every image evaluated once, rank 0 writing the run folder), and this process, which composed
the configuration, waits for them and returns rank 0's result. Nothing re-runs the command
line, so a Hydra multirun of ``ddp_launch`` jobs works (the case that breaks with in-process
``ddp``, see :mod:`handgestures.launch.ranks`).

What the launcher does and this module does not: start the processes (``spawn``: a fresh
interpreter, no fork of a process with threads), their rendezvous on this machine, watching
them, and stopping them all when one fails or when this process gets SIGINT/SIGTERM (it
passes the signal on once; each process stops at the end of its batch, keeps what finished
and exits 130/143). What is added here: each process leaves the terminal's process group (a
Ctrl-C reaches the processes once, through the launcher, not twice), is stopped with SIGTERM
if this process dies (Linux), keeps the job's thread count and log file, and the launcher's
outcome becomes the project's exit codes.

``trainer=ddp_spawn`` and ``trainer.strategy=ddp_spawn`` still work, with a deprecation message:
they always ran ``ddp`` processes, never Lightning's ``ddp_spawn``.
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
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures.errors import EXIT_ERROR, Interrupted, SpawnedJobFailed, UserError
from handgestures.launch.job import run_rank
from handgestures.launch.ranks import LAUNCH_STRATEGIES
from handgestures.runfolder import record as rr
from handgestures.runfolder.lifecycle import SIGNALS, log_to_file, record_stop
from handgestures.training.train import run_name

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
SHUTDOWN_SECONDS = 120  # after a signal, how long the processes may take to finish their batch and records
ELASTIC_LOGGERS = ("torch.distributed.elastic.multiprocessing.api", "torch.multiprocessing.spawn")
DEPRECATED_STRATEGIES = ("ddp_spawn", "ddp_spawn_find_unused_parameters_true")
DEPRECATION = (
    "trainer=ddp_spawn (trainer.strategy={strategy}) is deprecated: it never ran Lightning's ddp_spawn strategy but "
    "ddp processes that the job launches itself; it is now called trainer=ddp_launch (same behaviour)."
)


def wants_launch(trainer_cfg: Any) -> bool:
    """Whether the job launches its own DDP processes (``trainer=ddp_launch``, or the deprecated ``ddp_spawn``)."""
    return str(trainer_cfg.get("strategy", "auto")) in LAUNCH_STRATEGIES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_launched(cfg: DictConfig, processes: int, job_logging: Any, started_at: float) -> dict[str, float]:
    """Runs the job in ``processes`` DDP processes started by torch's elastic launcher; rank 0's final metrics.

    Raises :class:`~handgestures.errors.Interrupted` when SIGINT/SIGTERM stopped the run,
    :class:`~handgestures.errors.SpawnedJobFailed` when a process failed.
    """
    strategy = str(cfg.trainer.get("strategy"))
    if strategy in DEPRECATED_STRATEGIES:
        log.warning(DEPRECATION.format(strategy=strategy))
    if "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        raise UserError(
            "trainer=ddp_launch starts its own processes, but this one was started by a launcher of several "
            "(torchrun, srun or Lightning's ddp): use trainer=ddp there"
        )
    import torch  # the launcher's modules import torch.distributed: only for a DDP job
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    folder = Path(cfg.paths.output_dir)
    spec = {
        "config": OmegaConf.to_container(cfg, resolve=True),  # the processes have no Hydra to resolve ${hydra:...}
        "logging": job_logging,
        "threads": torch.get_num_threads(),
        "started_at_wall": time.time() - (time.perf_counter() - started_at),
    }
    launch = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=f"handgestures-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{_free_port()}", max_restarts=0, monitor_interval=0.2,
        start_method="spawn", local_addr="127.0.0.1", shutdown_timeout=SHUTDOWN_SECONDS,
    )  # fmt: skip
    log.info("ddp_launch: starting %d processes (threads each: %d)", processes, spec["threads"])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # the launcher replaces them
    # torch's launcher logs a dead process with its own traceback (of the launcher's wait): the job says it once
    quiet = {name: logging.getLogger(name) for name in ELASTIC_LOGGERS}
    levels = {name: logger.level for name, logger in quiet.items()}
    try:
        for logger in quiet.values():
            logger.setLevel(logging.CRITICAL)
        with SIGNALS:  # a signal before the launcher's own handlers are in place (no process started yet)
            codes = elastic_launch(launch, _process)(spec)
    except Interrupted as err:
        raise record_unrecorded_stop(folder, cfg, err) from None
    except SignalException as err:  # the launcher passed the signal on and waited for the processes
        raise record_unrecorded_stop(folder, cfg, Interrupted(int(err.sigval))) from None
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode in (rr.EXIT_SIGINT, rr.EXIT_SIGTERM):
            raise record_unrecorded_stop(folder, cfg, Interrupted(failure.exitcode - 128)) from None
        log_to_file(f"DDP process of rank {rank} failed (exit code {failure.exitcode}): {failure.message}")
        raise SpawnedJobFailed(rank, failure.exitcode, folder) from None
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
        for s, handler in handlers.items():
            signal.signal(s, handler)
    bad = {rank: code for rank, code in codes.items() if code}
    if bad:
        rank, code = min(bad.items())
        if code in (rr.EXIT_SIGINT, rr.EXIT_SIGTERM):
            raise record_unrecorded_stop(folder, cfg, Interrupted(code - 128))
        raise SpawnedJobFailed(rank, code, folder)
    record = json.loads((folder / rr.METRICS_FILE).read_text())
    return {k: float(v) for k, v in (record.get(rr.KEY_METRICS) or {}).items()}


def record_unrecorded_stop(folder: Path, cfg: DictConfig, err: Interrupted) -> Interrupted:
    """What the launcher says of a signal that stopped the processes before rank 0 could record it; returns ``err``.

    Rank 0 records its own stop (metrics.json ``interrupted``, the resume command) once its
    signal handlers are in place. A signal during the processes' start (imports, rendezvous,
    data loading) stops them before that: the launcher then writes the same record if the
    run folder has its config (the run can be resumed), or says that nothing was kept.
    """
    metrics = folder / rr.METRICS_FILE
    if metrics.is_file() and rr.read_json(metrics).get(rr.KEY_STATUS) == rr.STATUS_INTERRUPTED:
        return err  # rank 0 recorded it (this run, or the interrupted run being resumed)
    if (folder / rr.CONFIG_FILE).is_file() and not metrics.is_file():
        err.exit_code = record_stop(folder, run_name(cfg), err, wrote_metrics=False)
        return err
    print(f"\nrun interrupted ({err}) while its DDP processes were starting: no epoch had finished and nothing "
          f"was kept in {folder}. Start it again with the same command.", file=sys.stderr)  # fmt: skip
    return err


def _process(spec: dict[str, Any]) -> int:
    """One launched process: out of the terminal's group, its log and threads, then the job; its exit code."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the launcher only, which passes it on once
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # the launching process killed: stop cleanly
    rank = int(os.environ["RANK"])
    if spec["logging"]:
        config = json.loads(json.dumps(spec["logging"]))  # a copy
        for handler in (config.get("handlers") or {}).values():
            if rank and "filename" in handler:  # as Lightning's launcher names its children's logs
                handler["filename"] = handler["filename"].removesuffix(".log") + f"_ddp_process_{rank}.log"
        logging.config.dictConfig(config)
    import torch  # in the launched process: sets this process's threads

    torch.set_num_threads(int(spec["threads"]))
    cfg = OmegaConf.create(spec["config"])
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp"
    started_at = time.perf_counter() - (time.time() - spec["started_at_wall"])
    try:
        code = run_rank(cfg, started_at)
    except Exception:
        log.exception("DDP process of rank %d failed", rank)
        code = EXIT_ERROR
    if code:  # exit with it: a returned value waits for the launcher to read it, which a stopping launcher does not
        logging.shutdown()
        sys.exit(code)
    return code
