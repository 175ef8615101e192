"""The machine a benchmark run records (``bench/run_all.py``): what it is (CPU, cores, GPU,
library versions) and its own reference speed, measured in the same run, so that figures from
two machines can be compared."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["machine", "reference"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def machine(threads: int) -> list[tuple[str, str]]:
    """(field, value) rows describing this machine and software."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        import torch

        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        cuda = "torch not installed"
    return [
        ("CPU", _cpu_model()),
        ("cores (logical / usable by this process)", f"{os.cpu_count()} / {usable}"),
        ("threads given to each benchmark", str(threads)),
        ("GPU", cuda),
        ("load average (1 min) at start", f"{os.getloadavg()[0]:.2f}"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("python", platform.python_version()),
        *((name, _version(name)) for name in ("torch", "faiss", "numpy", "scipy")),
        ("cosnet-index", _version("cosnet_index")),
    ]


def reference(threads: int, seconds: float = 1.0) -> list[tuple[str, float, str]]:
    """This run's own machine reference: (name, value, unit)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    matmul = 2 * 512**3 * n / (time.perf_counter() - start) / 1e9

    conv = torch.nn.Conv3d(16, 16, 3, padding=1).eval()
    x = torch.randn(8, 16, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        conv(x)  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            n += 1
    conv_rate = 8 * n / (time.perf_counter() - start)
    return [
        ("NumPy float32 matmul 512x512", matmul, "GFLOP/s"),
        (f"torch Conv3d 16->16 3^3 on 32^3 ({threads} threads)", conv_rate, "volumes/s"),
    ]
