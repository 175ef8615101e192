"""How many CPU threads the heavy commands use: the cores this process may run on.

A SLURM job, a container or ``taskset`` gives a process fewer cores than the machine has: the
CPU affinity mask says which cores it may run on, and the cgroup CPU quota (``docker --cpus``,
SLURM's cgroup plugin, Kubernetes limits) how much of them it may use. torch's default thread
count is the machine's physical cores, which oversubscribes exactly where users run at scale
(issue 32). :func:`available_cpus` takes the smaller of the two, :func:`default_threads` adds the
``COSNET_INDEX_THREADS`` environment variable, and :func:`set_threads` applies it (every heavy
command's ``--threads`` option; Dask workers split the cores among themselves).

Read by hand, not through a library: ``os.sched_getaffinity`` is the standard library's, and the
two cgroup files are one line each (``psutil`` reads the affinity but not the quota).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from cosnet_index.errors import InputError

__all__ = [
    "THREADS_ENV",
    "available_cpus",
    "cgroup_cpu_quota",
    "default_threads",
    "parse_threads",
    "set_threads",
]

log = logging.getLogger(__name__)

THREADS_ENV = "COSNET_INDEX_THREADS"
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _cgroup_v2_quota(root: Path, proc_cgroup: str) -> float | None:
    """The tightest ``cpu.max`` (quota / period) from this process's cgroup up to the root."""
    relative = None
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            relative = line[3:].strip().lstrip("/")
    if relative is None:
        return None
    tightest = None
    folder = root / relative if relative else root
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                cpus = int(quota) / int(period)
                tightest = cpus if tightest is None else min(tightest, cpus)
        except (OSError, ValueError):
            pass
        if folder == root or root not in folder.parents:
            return tightest
        folder = folder.parent


def _cgroup_v1_quota(root: Path) -> float | None:
    for name in ("cpu,cpuacct", "cpu"):
        try:
            quota = int((root / name / "cpu.cfs_quota_us").read_text())
            period = int((root / name / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def cgroup_cpu_quota(root: Path = _CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """CPUs' worth of time this process's cgroup may use (e.g. 2.5), or None for no limit.

    Args:
        root: the cgroup file system (tests point it at a folder).
        proc_cgroup: the text of ``/proc/self/cgroup`` (read when None).
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            proc_cgroup = ""
    quota = _cgroup_v2_quota(root, proc_cgroup)
    return quota if quota is not None else _cgroup_v1_quota(root)


def available_cpus(root: Path = _CGROUP_ROOT, proc_cgroup: str | None = None) -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup quota (rounded
    up: a quota of 1.5 CPUs runs 2 threads), at least 1."""
    cpus = _affinity_cpus()
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return max(1, cpus)


def parse_threads(value: str | int | None, source: str = "--threads") -> int | None:
    """A thread count from the command line or the environment; None or 0: the default.

    Raises:
        InputError: not a non-negative integer.
    """
    if value is None or value == "":
        return None
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = -1
    if threads < 0:
        raise InputError(
            f"{source} must be a whole number of threads >= 0 (0: one per available core), "
            f"got {value!r}"
        )
    return threads or None


def default_threads() -> int:
    """``COSNET_INDEX_THREADS`` when set (and not 0), else :func:`available_cpus`."""
    threads = parse_threads(os.environ.get(THREADS_ENV), THREADS_ENV)
    return threads if threads is not None else available_cpus()


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads and FAISS's OpenMP threads to ``threads`` (None or 0:
    :func:`default_threads`); returns the number set."""
    import faiss
    import torch

    count = parse_threads(threads) or default_threads()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)
    log.debug("torch and FAISS threads: %d", count)
    return count
