"""A full disk (issue 30): every write path gives one line naming the path, never a traceback,
and nothing stored is lost; freeing space and re-running gives the rows of an undisturbed store.

Two kinds of test: the write itself made to fail with ``ENOSPC`` (monkeypatched: runs
everywhere, in CI too), and a real size-limited tmpfs (``mount -t tmpfs -o size=...``: needs
root, skipped with the reason elsewhere).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosnet_index.errors import WriteError
from cosnet_index.files import atomic_write, write_error
from tests._crash_util import assert_holds_exactly, invoke, store_content

FULL = "nothing stored was lost; free space and re-run"


def _enospc(path: str = "") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path or None)


# -- the messages --------------------------------------------------------------------------------


def _assert_same_rows(reference, store) -> None:  # type: ignore[no-untyped-def]
    """The store holds exactly the undisturbed reference store's rows and vectors."""
    expected, _ = store_content(reference)
    assert_holds_exactly(expected, store)


@pytest.mark.parametrize(
    "exc",
    [
        _enospc(),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError(
            "Error in void faiss::write_index(...) at impl/index_write.cpp:  write error in "
            "/s/index/a.faiss: 0 != 4096 (No space left on device)"
        ),
        OSError("IOError: No space left on device. Detail: [errno 28]"),  # pyarrow: no errno
        Exception("(sqlite3.OperationalError) database or disk is full"),
    ],
    ids=["enospc", "quota", "faiss", "pyarrow", "sqlite"],
)
def test_full_disk_errors_become_one_line(tmp_path, exc) -> None:
    error = write_error(exc, tmp_path / "index" / "a.faiss", needed_bytes=3 * 1024 * 1024)
    assert isinstance(error, WriteError)
    message = str(error)
    assert "\n" not in message
    assert str(tmp_path / "index" / "a.faiss") in message
    assert "about 3.0 MiB needed" in message and "free there" in message
    assert message.endswith(FULL)


def test_other_write_errors_and_unrelated_ones(tmp_path) -> None:
    error = write_error(OSError(errno.EIO, "Input/output error"), tmp_path / "x")
    assert error is not None and "Input/output error" in str(error)
    assert "nothing stored was lost" in str(error)
    assert write_error(FileNotFoundError(errno.ENOENT, "No such file"), tmp_path) is None
    assert write_error(RuntimeError("faiss: bad metric"), tmp_path) is None


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(WriteError, match=FULL), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise _enospc(str(tmp))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


# -- commands with a write made to fail (no mount needed) ----------------------------------------


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert FULL in lines[0], result.output
    return lines[0]


def test_init_on_a_full_disk_leaves_nothing(tmp_path, tiny_model, monkeypatch) -> None:
    import cosnet_index.store._directory as directory

    def copy_fails(source, target):  # type: ignore[no-untyped-def]
        raise _enospc(str(target))

    monkeypatch.setattr(directory.shutil, "copyfile", copy_fails)
    result = invoke(["init", "--store", tmp_path / "store", "--model", tiny_model[0]])
    line = _one_line_error(result)
    assert str(tmp_path / "store") in line and "MiB needed" in line
    assert list(tmp_path.iterdir()) == []  # no store, no staging folder


def _index_args(store: Path, collection: dict) -> list:
    return [
        "index", "--store", store, *collection["tomograms"], "--coords", collection["star"],
        "--batch-size", "2", "--commit-every", "2", "--no-progress",
    ]  # fmt: skip


def _fail_on_call(n: int, exc: BaseException):  # type: ignore[no-untyped-def]
    """A side effect that raises ``exc`` on its ``n``-th call (and passes before)."""
    calls = {"n": 0}

    def maybe_fail() -> None:
        calls["n"] += 1
        if calls["n"] == n:
            raise exc

    return maybe_fail


@pytest.mark.parametrize("where", ["shard", "catalog", "faiss"])
def test_index_on_a_full_disk_then_rerun(tmp_path, tiny_model, collection, monkeypatch, where):
    """The disk fills while a shard part, a catalog commit or the FAISS file is written: one
    line, nothing committed is lost, and a re-run gives the rows of an undisturbed store."""
    import pyarrow.parquet as pq
    import sqlalchemy.exc

    import cosnet_index.store._committing as committing
    import cosnet_index.store.vectors as vectors

    reference = tmp_path / "reference"
    assert invoke(["init", "--store", reference, "--model", tiny_model[0]]).exit_code == 0
    assert invoke(_index_args(reference, collection)).exit_code == 0
    store = tmp_path / "store"
    assert invoke(["init", "--store", store, "--model", tiny_model[0]]).exit_code == 0

    with monkeypatch.context() as patch:
        if where == "shard":
            fail = _fail_on_call(3, _enospc())
            real_write = pq.ParquetWriter.write_table

            def write_table(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                fail()
                return real_write(self, *args, **kwargs)

            patch.setattr(pq.ParquetWriter, "write_table", write_table)
        elif where == "catalog":
            import sqlite3

            full = sqlalchemy.exc.OperationalError(
                "INSERT", {}, sqlite3.OperationalError("database or disk is full")
            )
            fail = _fail_on_call(3, full)
            real_register = committing._register_part

            def register(store_, *args, **kwargs):  # type: ignore[no-untyped-def]
                from cosnet_index.store._engine import catalog_errors

                with catalog_errors(store_.engine, store_.path):
                    fail()
                return real_register(store_, *args, **kwargs)

            patch.setattr(committing, "_register_part", register)
        else:
            real_faiss_write = vectors._faiss().write_index

            def faiss_write(index, path):  # type: ignore[no-untyped-def]
                Path(path).write_bytes(b"\0" * 100)  # half a file, then the disk is full
                raise RuntimeError(
                    f"Error in void faiss::write_index: write error in {path}: 0 != 4096 "
                    "(No space left on device)"
                )

            patch.setattr(vectors._faiss(), "write_index", faiss_write)
        line = _one_line_error(invoke(_index_args(store, collection)))
        assert (".faiss" if where == "faiss" else "") in line
        if where == "faiss":
            assert real_faiss_write is not faiss_write
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    rerun = invoke(_index_args(store, collection))
    assert rerun.exit_code == 0, rerun.output
    assert invoke(["check", "--store", store]).exit_code == 0
    _assert_same_rows(reference, store)


def test_export_on_a_full_disk(tmp_path, monkeypatch) -> None:
    import pandas as pd
    import starfile

    from cosnet_index.query import write_table

    result = tmp_path / "result.parquet"
    table = pd.DataFrame(
        {"tomogram": ["TS_01"], "x": [1.0], "y": [2.0], "z": [3.0], "class": ["a"],
         "probability": [0.9]}
    )  # fmt: skip
    write_table(table, result, {})

    def write_fails(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise _enospc()

    monkeypatch.setattr(starfile, "write", write_fails)
    out = tmp_path / "particles"
    line = _one_line_error(invoke(["export", "--result", result, "--out", out]))
    assert str(out / "a.star") in line
    assert not list(out.glob("*"))


# -- a real full disk: a size-limited tmpfs (root only) -------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` (skip the test where mounting is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command: the tmpfs tests need one (and root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "mounting a size-limited tmpfs needs root (CAP_SYS_ADMIN); the monkeypatched "
            f"full-disk tests ran instead ({done.stderr.strip()})"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_init_on_a_full_tmpfs(tmp_path, tiny_model) -> None:
    with tmpfs(tmp_path / "disk", 512 * 1024) as disk:  # smaller than the checkpoint
        line = _one_line_error(
            invoke(["init", "--store", disk / "store", "--model", tiny_model[0]])
        )
        assert str(disk / "store") in line and "MiB needed" in line
        assert list(disk.iterdir()) == []


def test_index_on_a_full_tmpfs_then_free_space_and_rerun(tmp_path, tiny_model, collection) -> None:
    reference = tmp_path / "reference"
    assert invoke(["init", "--store", reference, "--model", tiny_model[0]]).exit_code == 0
    before = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    assert invoke(_index_args(reference, collection)).exit_code == 0
    after = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    growth = after - before
    with tmpfs(tmp_path / "disk", 16 * 1024 * 1024) as disk:
        store = disk / "store"
        assert invoke(["init", "--store", store, "--model", tiny_model[0]]).exit_code == 0
        free = shutil.disk_usage(disk).free
        ballast = disk / "ballast"
        with open(ballast, "wb") as handle:  # leave about half of what indexing needs
            handle.truncate(0)
            handle.write(b"\0" * max(0, free - growth // 2))
        result = invoke(_index_args(store, collection))
        _one_line_error(result)
        ballast.unlink()  # free space
        rerun = invoke(_index_args(store, collection))
        assert rerun.exit_code == 0, rerun.output
        check = invoke(["check", "--store", store])
        assert check.exit_code == 0, check.output
        _assert_same_rows(reference, store)


def test_segment_label_volume_on_a_full_disk(tmp_path, monkeypatch) -> None:
    """Writing a memory map on a full disk kills the process (SIGBUS): the label volume's blocks
    are allocated first, so a full disk is a WriteError before anything is mapped."""
    import os

    from cosnet_index.segment.write import LabelVolume

    def fallocate_fails(fd, offset, length):  # type: ignore[no-untyped-def]
        raise _enospc()

    monkeypatch.setattr(os, "posix_fallocate", fallocate_fails)
    with pytest.raises(WriteError, match=FULL):
        LabelVolume(tmp_path / "labels.mrc", (8, 8, 8), voxel_size_angstrom=10.0, n_labels=3)
    assert list(tmp_path.iterdir()) == []
