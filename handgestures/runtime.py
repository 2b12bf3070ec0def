"""Process and hardware settings of a run: the C library's memory policy, huge pages, precision.

Everything here is about the machine, not the study: each setting leaves the numbers a run
computes unchanged (precision aside, which ``docs/bf16.md`` shows costs no accuracy), and each
is a no-op where the platform lacks the feature. Why each one pays is in
``docs/performance.md``, with the benchmark command that measures it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

# ---- glibc malloc -------------------------------------------------------------------------
# allocations up to 32 MiB come from the heap, and up to 1 GiB of freed heap stays mapped
# instead of going back to the kernel
MALLOC_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
MALLOC_TRIM_THRESHOLD = 2**30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)


def keep_freed_memory() -> bool:
    """Stop glibc from returning the activations' memory to the kernel after every step.

    PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, the megabyte-sized
    activations of a step are ``mmap``-ed and unmapped, or trimmed off the heap top, at every
    step, and the next step page-faults the same memory in again. Keeping the memory removes
    those page faults; the numbers are unchanged, and the resident memory stays near its
    peak, which it reaches at every step anyway. A no-op (returns False) where the C library
    has no ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1 and ok
    return ok


# ---- transparent huge pages ---------------------------------------------------------------
HUGE_PAGE = 2 * 2**20  # bytes: a transparent huge page on x86-64 and most arm64 kernels
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # madvise advice numbers (linux/mman.h)


def back_with_huge_pages(tensor: torch.Tensor) -> bool:
    """Ask Linux to hold ``tensor``'s memory in 2 MB pages instead of 4 KB ones, in place.

    Batches are gathered from random rows of the whole dataset, so with 4 KB pages nearly
    every row costs TLB misses and page walks. ``MADV_COLLAPSE`` (Linux 6.1+) rebuilds the
    pages now, and the values are untouched; it works when transparent huge pages are
    ``always`` or ``madvise``, not ``never``. Only the whole 2 MB pages inside the tensor
    change. Returns whether the kernel accepted; False (and nothing changes) elsewhere, for
    tensors off the CPU and for tensors too small to hold one aligned huge page.
    """
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu":
        return False
    storage = tensor.untyped_storage()
    start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
    first, last = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
    if last <= first:
        return False
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return False
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    # HUGEPAGE first: it keeps the range in huge pages later (after a fork, a swap-in)
    if madvise(first, last - first, _MADV_HUGEPAGE) != 0:
        log.debug("madvise(MADV_HUGEPAGE) refused: %s", os.strerror(ctypes.get_errno()))
        return False
    if madvise(first, last - first, _MADV_COLLAPSE) != 0:
        log.debug("madvise(MADV_COLLAPSE) refused: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


# ---- precision ----------------------------------------------------------------------------
AUTO_PRECISION = "auto"


def native_bf16(device: str) -> bool:
    """Whether ``device`` ("cpu" or "cuda") runs bf16 matrix products in hardware.

    CPU: AVX-512 BF16 or AMX tiles (a CPU without them emulates bf16 and gets slower than
    fp32). CUDA: compute capability 8.0 or newer, emulation excluded.
    """
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo's first ``model name``), else the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware() -> dict[str, Any]:
    """What a run's numbers depend on besides its config, for metrics.json: CPU, bf16 support, GPU, threads, torch.

    bf16-mixed numbers differ between a CPU with native bf16 and one without, and between CPU
    kinds (docs/bf16.md), so the record says which machine made them.
    """
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_native_bf16": native_bf16("cpu"), "gpu": gpu,
            "threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip


def resolve_precision(precision: Any, accelerator: Any = "auto") -> str:
    """The Trainer precision a run uses: ``precision`` itself unless it is ``"auto"``.

    ``"auto"`` (the default) is ``bf16-mixed`` on hardware with native bf16 and ``32-true``
    elsewhere (MPS, older GPUs, CPUs without AVX-512 BF16/AMX): bf16 is faster where the
    hardware has it, and paired seeds detect no accuracy lost to it (``docs/bf16.md``). IvanNet on
    the augmented data asks for ``32-true`` in its config instead (``conf/model_data/``), so
    ``auto`` never reaches this function for it.
    """
    precision = str(precision)
    if precision != AUTO_PRECISION:
        return precision
    accelerator = str(accelerator).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if native_bf16("cuda") else "32-true"
    if accelerator == "auto" and torch.backends.mps.is_available():
        return "32-true"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if native_bf16("cpu") else "32-true"
    return "32-true"  # mps, tpu, ...: no evidence for bf16 there


def resolve_config_precision(cfg: DictConfig) -> str:
    """Replaces ``trainer.precision: auto`` in ``cfg`` by the precision the run will use."""
    precision = resolve_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto"))
    with open_dict(cfg):
        cfg.trainer.precision = precision
    return precision


def configure_process(cfg: DictConfig) -> str:
    """The process settings of one run, applied once: memory policy, then precision.

    Returns the precision, which is also written into ``cfg`` (``trainer.precision``), so
    the saved config says what ``auto`` became.
    """
    if not keep_freed_memory():
        log.debug("mallopt unavailable: the C library's default memory trimming stays")
    return resolve_config_precision(cfg)
