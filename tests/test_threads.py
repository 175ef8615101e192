"""Threads from the CPU affinity and the cgroup quota (cosnet_index.threads, --threads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cosnet_index.errors import InputError
from cosnet_index.threads import (
    THREADS_ENV,
    AdaptiveThreads,
    adaptive_threads,
    available_cpus,
    cgroup_cpu_quota,
    default_threads,
    parse_threads,
    set_threads,
    thread_candidates,
)


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_cgroup_v2_quota_is_the_tightest_from_the_process_group_up(tmp_path: Path) -> None:
    job = tmp_path / "slurm" / "job_7"
    job.mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")  # the root: no limit
    (tmp_path / "slurm" / "cpu.max").write_text("400000 100000\n")  # 4 CPUs
    (job / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert cgroup_cpu_quota(tmp_path, "0::/slurm/job_7\n") == pytest.approx(1.5)
    assert cgroup_cpu_quota(tmp_path, "0::/slurm\n") == pytest.approx(4.0)
    assert cgroup_cpu_quota(tmp_path, "0::/\n") is None
    expected = min(_affinity(), 2)  # 1.5 CPUs of time: 2 threads, never more than the affinity
    assert available_cpus(tmp_path, "0::/slurm/job_7\n") == expected


def test_cgroup_v1_quota_and_no_cgroup(tmp_path: Path) -> None:
    folder = tmp_path / "cpu,cpuacct"
    folder.mkdir()
    (folder / "cpu.cfs_quota_us").write_text("100000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path, "") == pytest.approx(1.0)
    assert available_cpus(tmp_path, "") == 1
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no limit"
    assert cgroup_cpu_quota(tmp_path, "") is None
    assert available_cpus(tmp_path / "none", "") == _affinity()


def test_environment_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "0")  # 0: the available cores
    assert default_threads() == available_cpus()
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(InputError, match=THREADS_ENV):
        default_threads()
    assert parse_threads(None) is None and parse_threads("4") == 4
    with pytest.raises(InputError, match="--threads"):
        parse_threads(-1)


def test_threads_option_sets_torch_and_faiss_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    from cosnet_index.cli._app import cli

    before = torch.get_num_threads()
    try:
        runner = CliRunner()
        # the option is applied while parsing, before the command fails on the missing store
        result = runner.invoke(cli, ["classify", "--threads", "1", "--store", "/nonexistent/x"])
        assert result.exit_code != 0
        assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        runner.invoke(cli, ["classify", "--store", "/nonexistent/x"])
        assert torch.get_num_threads() == 2
        monkeypatch.setenv(THREADS_ENV, "lots")
        result = runner.invoke(cli, ["classify", "--store", "/nonexistent/x"])
        assert result.exit_code == 2 and THREADS_ENV in result.output
        assert "--threads" in runner.invoke(cli, ["index", "--help"]).output
    finally:
        set_threads(before)


class _FakeLoad:
    """A clock whose batches cost ``seconds_per_item[threads]`` per item."""

    def __init__(self, seconds_per_item: dict[int, float]) -> None:
        self.seconds_per_item = seconds_per_item
        self.now = 0.0
        self.threads = 0

    def clock(self) -> float:
        return self.now

    def apply(self, count: int) -> None:
        self.threads = count

    def run(self, tuner: AdaptiveThreads, n_items: int) -> int:
        with tuner.batch(n_items) as count:
            assert count == self.threads  # the batch runs at the count it is timed at
            self.now += self.seconds_per_item[count] * n_items
        return count


def test_adaptive_threads_keep_the_faster_count_and_follow_a_change_of_load() -> None:
    load = _FakeLoad({2: 1.0, 1: 2.0})  # idle: 2 threads twice as fast
    tuner = AdaptiveThreads(2, probe_batches=2, reprobe_seconds=1000.0, clock=load.clock,
                            apply=load.apply)  # fmt: skip
    assert tuner.candidates == (2, 1)
    used = [load.run(tuner, 64) for _ in range(10)]
    assert used[:4] == [2, 2, 1, 1] and set(used[4:]) == {2}
    load.seconds_per_item = {2: 4.0, 1: 2.0}  # a busy neighbour: 2 spinning threads lose
    used = [load.run(tuner, 64) for _ in range(20)]
    assert used[-1] == 1 and tuner.choices[0] == 2 and set(tuner.choices[1:]) == {1}
    assert thread_candidates(16) == (16, 15, 8, 1) and thread_candidates(1) == (1,)


def test_adaptive_threads_do_not_score_a_short_last_batch() -> None:
    load = _FakeLoad({2: 1.0, 1: 2.0})
    tuner = AdaptiveThreads(2, probe_batches=1, clock=load.clock, apply=load.apply)
    load.run(tuner, 64)  # 2 threads scored
    load.seconds_per_item = {2: 1.0, 1: 0.1}
    load.run(tuner, 4)  # a short batch at 1 thread: timed, not scored
    assert tuner.choices == []
    load.seconds_per_item = {2: 1.0, 1: 2.0}
    load.run(tuner, 64)
    assert tuner.choices == [2]


def test_default_threads_are_adaptive_and_an_explicit_count_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    set_threads(None)
    tuner = adaptive_threads()
    assert (tuner is not None) == (available_cpus() > 1)
    set_threads(1)
    assert adaptive_threads() is None and torch.get_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "1")
    set_threads(None)
    assert adaptive_threads() is None


def test_embedding_under_adaptive_threads_equals_fixed_threads() -> None:
    from cosnet_index import threads
    from cosnet_index.model import CosNet, CosNetConfig

    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8)))
    boxes = torch.randn(6, 32, 32, 32)
    torch.set_num_threads(1)
    fixed, masks = model.embed(boxes, batch_size=2), model.decode(boxes, batch_size=2)
    tuner = AdaptiveThreads(2, probe_batches=1, reprobe_seconds=0.0)
    threads._ADAPTIVE = tuner
    adaptive = model.embed(boxes, batch_size=2)
    assert len({*tuner.choices}) >= 1  # probed, chose, probed again (reprobe_seconds 0)
    torch.testing.assert_close(adaptive, fixed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.decode(boxes, batch_size=2), masks, rtol=1e-5, atol=1e-5)


def test_the_cli_makes_openmp_threads_sleep_at_barriers_unless_told_otherwise() -> None:
    import subprocess
    import sys

    code = "import os, cosnet_index.cli; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "ACTIVE"
