"""``gemm``: the machine's matrix-multiply peak, ``torch.matmul`` of large square matrices in fp32 and bf16.

GFLOP/s, best of several repeats per size: the ceiling the networks' convolutions are measured against.
"""

from __future__ import annotations

import time
from typing import Any


def worker_gemm(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best, per_size = 0.0, {}
        for n in spec["sizes"]:
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            torch.matmul(a, b)  # warm-up (and the library's kernel choice)
            flops, size_best = 2.0 * n**3, 0.0
            for _ in range(spec["reps"]):
                start = time.perf_counter()
                torch.matmul(a, b)
                size_best = max(size_best, flops / (time.perf_counter() - start) / 1e9)
            per_size[str(n)] = round(size_best, 1)
            best = max(best, size_best)
        out[f"{name}_gflops"] = round(best, 1)
        out[f"{name}_gflops_by_size"] = per_size
    return out
