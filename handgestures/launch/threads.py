"""How many CPU threads a training process uses, so that it shares a busy machine well.

PyTorch starts one OpenMP thread per core and every operator waits for all of them. When
another process keeps a core busy, the thread on that core gets a fraction of it and the
whole step waits for that thread (plus the spin-waiting of the others), so training with
the default threads slows down several times over instead of losing one core's worth.

The policy, ``HANDGESTURES_THREADS`` in the environment:

* ``auto`` (the default): at the start of each job, count the cores other processes keep
  busy (``/proc/stat`` over :data:`PROBE_SECONDS`) and use one thread per free core (at least
  one). A joblib sweep of ``n_jobs`` gives each job ``cores // n_jobs`` threads instead (its
  own jobs would count as busy); DDP processes get Lightning's ``cores // processes``.
* a number: exactly that many threads;
* ``torch``: PyTorch's own default (one thread per core), as before this policy existed.

``OMP_NUM_THREADS`` set by the user (or by torchrun) always wins: the policy then does
nothing. :func:`at_process_start` also sets :data:`DEFAULT_WAIT_POLICY` as ``OMP_WAIT_POLICY``
unless the user set it; it must run before ``torch`` is imported (OpenMP reads it once).
The choice of defaults is measured by ``benchmarks/contention.py`` (docs/scaling.md).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "HANDGESTURES_THREADS"
DEFAULT_POLICY = "auto"
DEFAULT_WAIT_POLICY: str | None = None  # OMP_WAIT_POLICY set at process start (None: leave OpenMP's)
PROBE_SECONDS = 0.25


def at_process_start(environ: MutableMapping[str, str] | None = None) -> None:
    """Environment settings OpenMP reads once: call before the first ``import torch``."""
    environ = os.environ if environ is None else environ
    if DEFAULT_WAIT_POLICY and "OMP_WAIT_POLICY" not in environ and policy(environ) != "torch":
        environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY


def policy(environ: Mapping[str, str] | None = None) -> str:
    """``auto``, ``torch`` or a positive number as a string; a clear error for anything else."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, DEFAULT_POLICY).strip().lower() or DEFAULT_POLICY
    if value in ("auto", "torch") or (value.isdigit() and int(value) > 0):
        return value
    raise ValueError(f"{ENV}={environ.get(ENV)!r}: expected 'auto', 'torch' or a positive number of threads")


def cores() -> int:
    """Cores this process may run on (its CPU affinity), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus``, from /proc/stat; None where it is absent."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    return busy, total


def _own_jiffies() -> int:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in the same clock ticks as /proc/stat


def busy_cores(seconds: float = PROBE_SECONDS) -> float | None:
    """Cores of this process's affinity kept busy by other processes, averaged over ``seconds``."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return None
    before, own_before = _cpu_times(cpus), _own_jiffies()
    if before is None:
        return None
    time.sleep(seconds)
    after, own_after = _cpu_times(cpus), _own_jiffies()
    elapsed = (after[1] - before[1]) / len(cpus)  # jiffies of one core
    if elapsed <= 0:
        return None
    return max(0.0, (after[0] - before[0] - (own_after - own_before)) / elapsed)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int | None  # None: leave torch's setting alone
    reason: str


def choose(jobs: int = 1, processes: int = 1, environ: Mapping[str, str] | None = None,
           probe=busy_cores) -> ThreadChoice:  # fmt: skip
    """The threads one job should use, and why (logged with the run)."""
    environ = os.environ if environ is None else environ
    if "OMP_NUM_THREADS" in environ:  # the user's, torchrun's, or joblib's (cores // n_jobs in its workers)
        by = "by joblib (cores // n_jobs) or the user" if jobs > 1 else "in the environment"
        return ThreadChoice(None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']} set {by}")
    value, n = policy(environ), cores()
    if value == "torch":
        return ThreadChoice(None, f"{ENV}=torch: PyTorch's default")
    if value.isdigit():
        return ThreadChoice(int(value), f"{ENV}={value}")
    if processes > 1:
        return ThreadChoice(None, f"{processes} DDP processes: Lightning gives each {max(1, n // processes)}")
    if jobs > 1:
        return ThreadChoice(max(1, n // jobs), f"{n} cores shared by {jobs} parallel jobs")
    busy = probe()
    if busy is None:
        return ThreadChoice(None, "CPU load unknown here: PyTorch's default")
    free = max(1, min(n, round(n - busy)))
    return ThreadChoice(free, f"{n} cores, {busy:.2f} kept busy by other processes")


def parallel_jobs(hydra_cfg: Any) -> int:
    """How many jobs of this sweep run at once on this machine (joblib's n_jobs; else 1)."""
    launcher = hydra_cfg.get("launcher") if hydra_cfg is not None else None
    if not launcher or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return cores() if n_jobs < 0 else max(1, n_jobs)


def apply_for_job(processes: int = 1, hydra_cfg: Any = None) -> ThreadChoice:
    """Chooses and sets this job's threads (``torch.set_num_threads``); returns the choice."""
    import torch  # this module sets OpenMP's variables before torch is imported

    choice = choose(jobs=parallel_jobs(hydra_cfg), processes=processes)
    if choice.threads is not None:
        torch.set_num_threads(choice.threads)
    log.info("threads: %d now in process %d (%s)", torch.get_num_threads(), os.getpid(), choice.reason)
    return choice
