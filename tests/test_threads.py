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
    available_cpus,
    cgroup_cpu_quota,
    default_threads,
    parse_threads,
    set_threads,
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
