"""How many CPU threads the heavy commands use: the cores this process may run on.

A SLURM job, a container or ``taskset`` gives a process fewer cores than the machine has: the
CPU affinity mask says which cores it may run on, and the cgroup CPU quota (``docker --cpus``,
SLURM's cgroup plugin, Kubernetes limits) how much of them it may use. torch's default thread
count is the machine's physical cores, which oversubscribes exactly where users run at scale
(issue 32). :func:`available_cpus` takes the smaller of the two, :func:`default_threads` adds the
``COSNET_INDEX_THREADS`` environment variable, and :func:`set_threads` applies it (every heavy
command's ``--threads`` option; Dask workers split the cores among themselves).

Cores a process may use are not cores it gets: beside another busy process, torch's OpenMP
threads spin at every barrier waiting for the one that was descheduled, and 2 threads embed at
0.55 of the rate of 1 (docs/cluster.md). The right count depends on the load, which changes while
a long command runs, so when the count is the default (no ``--threads``, no environment variable)
:class:`AdaptiveThreads` measures it: the model's batch loops (:func:`timed_batch`) try each
candidate count for a few batches, keep the fastest per box, and try again every
``reprobe_seconds``. An explicit count is always obeyed as given.

Read by hand, not through a library: ``os.sched_getaffinity`` is the standard library's, and the
two cgroup files are one line each (``psutil`` reads the affinity but not the quota).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cosnet_index.errors import InputError

__all__ = [
    "THREADS_ENV",
    "AdaptiveThreads",
    "adaptive_threads",
    "available_cpus",
    "cgroup_cpu_quota",
    "default_threads",
    "parse_threads",
    "set_threads",
    "thread_candidates",
    "timed_batch",
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


def thread_candidates(max_threads: int) -> tuple[int, ...]:
    """Counts :class:`AdaptiveThreads` tries, most first: all cores, one fewer (a busy neighbour
    on a big node), half, and one."""
    n = max(1, int(max_threads))
    return tuple(sorted({n, max(1, n - 1), max(1, (n + 1) // 2), 1}, reverse=True))


class AdaptiveThreads:
    """Chooses torch's thread count by measuring the batches of a loop (module docstring).

    Probing: each candidate count runs ``probe_batches`` batches; the one with the least median
    seconds per item is kept until ``reprobe_seconds`` have passed, then all are probed again.
    Batches of fewer than half the largest batch seen are timed but not scored (a short last
    batch is slower per box at any count).

    Args:
        max_threads: the cores this process may use (:func:`available_cpus`).
        probe_batches: batches per candidate in a probe round.
        reprobe_seconds: how long a choice is kept before the next probe round.
        clock: seconds (tests pass a fake clock).
        apply: sets the thread count (default ``torch.set_num_threads``).
    """

    def __init__(
        self,
        max_threads: int,
        *,
        probe_batches: int = 2,
        reprobe_seconds: float = 30.0,
        clock: Callable[[], float] = time.perf_counter,
        apply: Callable[[int], None] | None = None,
    ) -> None:
        if probe_batches < 1:
            raise InputError(f"probe_batches must be >= 1, got {probe_batches}")
        self.candidates = thread_candidates(max_threads)
        self.probe_batches = int(probe_batches)
        self.reprobe_seconds = float(reprobe_seconds)
        self._clock = clock
        self._apply = apply if apply is not None else _torch_set_num_threads
        self._samples: dict[int, list[float]] = {}
        self._probing = 0  # index into candidates while probing; -1: exploiting
        self._chosen = self.candidates[0]
        self._chosen_at = 0.0
        self._largest = 0
        self.choices: list[int] = []  # every count chosen after a probe round (for logs, tests)

    @property
    def current(self) -> int:
        """The count the next batch runs with."""
        if self._probing >= 0:
            return self.candidates[self._probing]
        return self._chosen

    @contextlib.contextmanager
    def batch(self, n_items: int) -> Iterator[int]:
        """Run one batch of ``n_items`` at :attr:`current` threads and time it."""
        if self._probing < 0 and self._clock() - self._chosen_at >= self.reprobe_seconds:
            self._probing, self._samples = 0, {}
        count = self.current
        self._apply(count)
        start = self._clock()
        yield count
        seconds = self._clock() - start
        self._largest = max(self._largest, int(n_items))
        if self._probing < 0 or n_items <= 0 or n_items < self._largest / 2:
            return
        samples = self._samples.setdefault(count, [])
        samples.append(seconds / n_items)
        if len(samples) >= self.probe_batches:
            self._probing += 1
            if self._probing >= len(self.candidates):
                self._finish_probe()

    def _finish_probe(self) -> None:
        medians = {c: sorted(s)[len(s) // 2] for c, s in self._samples.items()}
        self._chosen = min(medians, key=lambda c: (medians[c], -c))
        self._chosen_at = self._clock()
        self._probing = -1
        self.choices.append(self._chosen)
        log.debug(
            "threads: %d (seconds per item %s)",
            self._chosen,
            ", ".join(f"{c}: {m:.2e}" for c, m in sorted(medians.items())),
        )
        self._apply(self._chosen)


def _torch_set_num_threads(count: int) -> None:
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


_ADAPTIVE: AdaptiveThreads | None = None


def adaptive_threads() -> AdaptiveThreads | None:
    """The process's :class:`AdaptiveThreads`, when :func:`set_threads` chose the default."""
    return _ADAPTIVE


@contextlib.contextmanager
def timed_batch(n_items: int) -> Iterator[None]:
    """Wrap one batch of a heavy loop: timed by the process's :class:`AdaptiveThreads` when
    there is one, else nothing happens."""
    tuner = _ADAPTIVE
    if tuner is None:
        yield
        return
    with tuner.batch(n_items):
        yield


def set_threads(threads: int | None = None, *, adaptive: bool = True) -> int:
    """Set torch's intra-op threads and FAISS's OpenMP threads to ``threads``; returns the
    number set.

    ``threads`` None or 0 with no ``COSNET_INDEX_THREADS``: :func:`available_cpus`, and (with
    ``adaptive``) torch's count is then measured by :class:`AdaptiveThreads` in the model's
    batch loops. An explicit count (argument or environment) is fixed.
    """
    import faiss

    global _ADAPTIVE
    explicit = parse_threads(threads) or parse_threads(os.environ.get(THREADS_ENV), THREADS_ENV)
    count = explicit or available_cpus()
    _torch_set_num_threads(count)
    faiss.omp_set_num_threads(count)
    _ADAPTIVE = AdaptiveThreads(count) if adaptive and explicit is None and count > 1 else None
    log.debug("torch and FAISS threads: %d%s", count, " (adaptive)" if _ADAPTIVE else "")
    return count
