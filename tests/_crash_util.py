"""Reliability harnesses: a tiny store world, store digests and content, and SIGKILL trials.

A *world* is a folder with a tiny random COS-Net checkpoint (``save_checkpoint``), a few small
noisy MRC tomograms with dark blobs at the particle positions, one CSV of coordinates for all of
them, and a template store (made through the public API) that already indexed the first
``n_indexed`` tomograms and holds one support class. Tests copy the template before writing.

A *crash trial* (``crash_trial``) copies the template, starts ``cosnet-index CMD`` in a
subprocess that has already imported torch/faiss and waits on stdin, says "go", kills it with
SIGKILL after a seeded random delay inside the time the same command took without a crash,
runs the same command again (in this process, through click), runs ``check``, and compares the
final store with a crash-free reference run: the same set of (tomogram, x, y, z), every vector
identical, no lost and no duplicated vector. ``bench/crash.py`` runs many trials.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tests import _store_util

__all__ = [
    "CrashResult",
    "Reference",
    "World",
    "compare_content",
    "crash_trial",
    "invoke",
    "make_world",
    "reference_run",
    "store_content",
    "store_digest",
    "tiny_checkpoint",
    "write_tomogram",
]

SHAPE_ZYX = (40, 48, 48)
VOXEL_ANGSTROM = 10.0
CLASS_NAME = "blob"
COMMANDS = ("index", "index-pick", "classes-add", "reindex", "tomograms-remove")
"""``tomograms-remove`` removes the template's last indexed tomogram: a world with
``n_indexed >= 2`` (with one, the store would be left empty)."""


# -- building a world ----------------------------------------------------------------------------


def tiny_checkpoint(path: Path, seed: int = 0) -> str:
    """A tiny random COS-Net saved with ``save_checkpoint``; returns its hash."""
    return _store_util.tiny_checkpoint(path, seed)[1]


def write_tomogram(
    path: Path,
    centres_xyz: np.ndarray,
    *,
    shape_zyx: tuple[int, int, int] = SHAPE_ZYX,
    voxel_size_angstrom: float = VOXEL_ANGSTROM,
    seed: int = 0,
) -> Path:
    """Noise (float32) with a dark Gaussian blob at each ``(x, y, z)`` centre."""
    centres = np.asarray(centres_xyz, dtype=np.float64).reshape(-1, 3)
    return _store_util.write_tomogram(
        path,
        shape_zyx=shape_zyx,
        voxel_size_angstrom=voxel_size_angstrom,
        seed=seed,
        centres_xyz=centres,
    )


@dataclass(frozen=True)
class World:
    """Paths of a prepared world (see the module docstring).

    With ``server`` (a PostgreSQL admin URL), the template store's catalog is the database
    ``template_url`` on that server, and every fresh store gets its own copy of it
    (``CREATE DATABASE ... TEMPLATE``): :meth:`db_url` gives a store's catalog URL.
    """

    root: Path
    checkpoint: Path
    other_checkpoint: Path
    tomograms: tuple[Path, ...]
    coords: Path
    store: Path
    n_indexed: int
    server: str | None = None
    template_url: str | None = None
    databases: list[str] = field(default_factory=list)

    def db_url(self, store: Path) -> str | None:
        """The catalog URL of a store of this world (None: SQLite inside the store)."""
        if self.server is None:
            return None
        if Path(store) == self.store:
            return self.template_url
        from sqlalchemy.engine import make_url

        name = "cosnet_crash_" + hashlib.sha1(str(Path(store).resolve()).encode()).hexdigest()[:12]
        return make_url(self.server).set(database=name).render_as_string(hide_password=False)

    def fresh_store(self, folder: Path) -> Path:
        """A private copy of the template store under ``folder`` (and of its catalog)."""
        target = folder / "store"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.store, target)
        url = self.db_url(target)
        if url is not None:
            from sqlalchemy.engine import make_url

            assert self.server is not None and self.template_url is not None
            name = make_url(url).database
            template = make_url(self.template_url).database
            _admin_sql(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _admin_sql(self.server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.databases.append(str(name))
        return target

    def drop_databases(self) -> None:
        """Drop every PostgreSQL database this world made (the template's too)."""
        if self.server is None:
            return
        from sqlalchemy.engine import make_url

        assert self.template_url is not None
        for name in [*self.databases, make_url(self.template_url).database]:
            _admin_sql(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()


def _admin_sql(server: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def make_world(
    root: Path,
    *,
    n_tomograms: int = 3,
    n_per_tomogram: int = 10,
    n_indexed: int = 1,
    seed: int = 0,
    server: str | None = None,
) -> World:
    """Write checkpoints, tomograms, coordinates and an indexed template store under ``root``.

    ``server``: a PostgreSQL admin URL; the catalogs are then databases on it
    (:class:`World`); None: SQLite inside each store.
    """
    from cosnet_index.classes import add_class
    from cosnet_index.store import Store, index_tomograms

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    checkpoint, other = root / "model.pt", root / "other_model.pt"
    tiny_checkpoint(checkpoint, seed)
    tiny_checkpoint(other, seed + 1)
    nz, ny, nx = SHAPE_ZYX
    tomograms, frames = [], []
    for t in range(n_tomograms):
        name = f"TS_{t + 1:02d}"
        xyz = np.stack(
            [
                rng.uniform(16, nx - 16, n_per_tomogram),
                rng.uniform(16, ny - 16, n_per_tomogram),
                rng.uniform(16, nz - 16, n_per_tomogram),
            ],
            axis=1,
        ).round(2)
        tomograms.append(write_tomogram(root / f"{name}.mrc", xyz, seed=seed + 10 + t))
        frames.append(
            pd.DataFrame({"tomogram": name, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
        )
    coords = root / "coords.csv"
    pd.concat(frames, ignore_index=True).to_csv(coords, index=False)
    first = root / "coords_indexed.csv"  # rows of the tomograms the template indexed
    pd.concat(frames[:n_indexed] or frames[:1], ignore_index=True).to_csv(first, index=False)
    store_path = root / "template-store"
    shutil.rmtree(store_path, ignore_errors=True)
    template_url = None
    if server is not None:
        from tests._postgres_util import create_database

        template_url = create_database(server)
    with Store.create(store_path, model_path=checkpoint, db_url=template_url) as store:
        if n_indexed:
            index_tomograms(store, tomograms[:n_indexed], first, progress=False, batch_size=8)
            add_class(store, CLASS_NAME, subtomogram_ids=[1])
    return World(
        root, checkpoint, other, tuple(tomograms), coords, store_path, n_indexed, server,
        template_url,
    )  # fmt: skip


# -- looking at a store --------------------------------------------------------------------------


def store_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under a store, by relative path.

    SQLite's ``-shm`` file (a shared-memory index rebuilt on open, no data) is left out, and an
    empty ``-wal`` counts as no ``-wal`` (a read-only reader may leave an empty one behind); a
    ``-wal`` with content is data and is compared like any file.
    """
    out = {}
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        name = file.relative_to(path).as_posix()
        if name.endswith("-shm") or (name.endswith("-wal") and file.stat().st_size == 0):
            continue
        out[name] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def store_content(
    path: Path, db_url: str | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``(table, classes)``: one row per stored vector (``tomogram, x, y, z, id, vector``) read
    from the catalog (at ``db_url`` when given) + shards, and class name -> (K, dim) support
    vectors."""
    from cosnet_index.classes import list_classes
    from cosnet_index.store import Store

    with Store.open(path, readonly=True, db_url=db_url) as store:
        table = store.subtomogram_table()
        if len(table):
            _, xb = store.load_vectors(table["id"].to_numpy())
        else:
            xb = np.zeros((0, 0), np.float32)
        classes = {c.name: c.vectors for c in list_classes(store)}
    frame = table[["tomogram", "x", "y", "z", "id"]].copy()
    frame["vector"] = list(xb)
    return frame, classes


def compare_content(
    reference: pd.DataFrame, final: pd.DataFrame, *, rtol: float = 1e-5, atol: float = 1e-6
) -> dict[str, int]:
    """Lost, duplicated, extra and changed vectors of ``final`` against ``reference``.

    "Changed" allows float32 round-off (``rtol``/``atol``): a re-run embeds the remaining boxes in
    other batches and thread counts than the reference, which reorders the convolutions' sums.
    A vector of another box or of another model differs by orders of magnitude more.
    """
    key = ["tomogram", "x", "y", "z"]
    ref_keys = reference[key].apply(tuple, axis=1)
    fin_keys = final[key].apply(tuple, axis=1)
    duplicated = int(fin_keys.duplicated().sum())
    ref_set, fin_set = set(ref_keys), set(fin_keys)
    lost, extra = len(ref_set - fin_set), len(fin_set - ref_set)
    ref_vec = dict(zip(ref_keys, reference["vector"], strict=True))
    changed = 0
    for k, v in zip(fin_keys, final["vector"], strict=True):
        if k in ref_vec and not np.allclose(ref_vec[k], v, rtol=rtol, atol=atol):
            changed += 1
    return {"lost": lost, "duplicated": duplicated, "extra": extra, "changed": changed}


# -- running commands ----------------------------------------------------------------------------


def invoke(args: Sequence[str]):  # type: ignore[no-untyped-def]
    """Run ``cosnet-index ARGS`` in this process (click's runner); returns the click Result."""
    from click.testing import CliRunner

    from cosnet_index.cli._app import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def command_args(world: World, command: str, store: Path, batch_size: int = 8) -> list[str]:
    """The CLI arguments of a crash-trial command on ``store`` (its ``--db-url`` included)."""
    url = world.db_url(store)
    return _command_args(world, command, store, batch_size) + (["--db-url", url] if url else [])


def _command_args(world: World, command: str, store: Path, batch_size: int) -> list[str]:
    if command == "index":
        return [
            "index",
            "--store",
            str(store),
            *map(str, world.tomograms),
            "--coords",
            str(world.coords),
            "--batch-size",
            str(batch_size),
            "--commit-every",
            str(batch_size),  # several parts per tomogram: kills land between commit points
            "--no-progress",
        ]
    if command == "index-pick":  # no coordinates: candidates picked by DoG, then indexed
        # only the tomograms not indexed yet: one indexed from coordinates is refused by picking
        # (its vectors would mix two ways of making them; `index --replace` changes them)
        return [
            "index", "--store", str(store), *map(str, world.tomograms[world.n_indexed :]),
            "--pick", "dog",
            "--diameter", "100", "--pick-threshold", "4", "--batch-size", "2",
            "--commit-every", "2", "--no-progress",  # many parts: kills land between commits
        ]  # fmt: skip
    if command == "classes-add":
        ids = ",".join(str(i) for i in range(1, 6))
        x, y, z = 24, 24, 20  # a position not indexed: cut and embedded once
        return [
            "classes", "add", "--store", str(store), "trial",
            "--subtomogram", ids, "--at", str(world.tomograms[0]), str(x), str(y), str(z),
        ]  # fmt: skip
    if command == "reindex":
        return ["reindex", "--store", str(store)]
    if command == "tomograms-remove":  # the last tomogram the template indexed, and its shots
        name = world.tomograms[world.n_indexed - 1].stem
        return ["tomograms", "remove", "--store", str(store), name, "--force"]
    raise ValueError(f"unknown command {command!r}; one of {COMMANDS}")


_CHILD = """
import sys
import faiss, torch  # noqa: F401  (imported before 'go' so the kill lands in the work)
import cosnet_index.cli.classes, cosnet_index.cli.store, cosnet_index.cli.tomograms  # noqa: F401
import cosnet_index.store.tomograms  # noqa: F401
import cosnet_index.store, cosnet_index.classes  # noqa: F401
from cosnet_index.cli._app import cli
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
try:
    cli.main(sys.argv[1:], prog_name="cosnet-index")
finally:  # the work is over here; the interpreter's exit takes a while longer
    sys.stdout.write("\\ndone\\n"); sys.stdout.flush()
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    return env


def start_child(args: Sequence[str]) -> subprocess.Popen:
    """A ``cosnet-index ARGS`` process that imported everything and waits for :func:`go`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        _, err = proc.communicate(timeout=60)
        raise RuntimeError(f"child did not start: {line!r} {err[-2000:]}")
    return proc


def go(proc: subprocess.Popen) -> float:
    """Let a started child run; returns the start time (``time.monotonic``)."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()  # communicate() closes it later
    return time.monotonic()


@dataclass(frozen=True)
class Reference:
    """A crash-free run of one command: its duration and the store it leaves."""

    command: str
    seconds: float
    table: pd.DataFrame
    classes: dict[str, np.ndarray]
    index_digest: str


def _index_digest(store: Path) -> str:
    files = sorted((store / "index").glob("*.faiss"))
    return "".join(hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files)


def reference_run(world: World, command: str, folder: Path) -> Reference:
    """Run ``command`` on a fresh copy of the template in a child, without a crash."""
    store = world.fresh_store(folder)
    proc = start_child(command_args(world, command, store))
    started = go(proc)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # until the work is over (not the interpreter's exit)
        lines.append(line)
        if line.strip() == "done":
            break
    seconds = time.monotonic() - started
    out, err = proc.communicate(timeout=600)
    out = "".join(lines) + out
    if proc.returncode != 0:
        raise RuntimeError(f"reference {command} failed ({proc.returncode}): {out}\n{err}")
    table, classes = store_content(store, world.db_url(store))
    return Reference(command, seconds, table, classes, _index_digest(store))


def _state(store: Path, db_url: str | None = None) -> tuple[int, int]:
    """(shard rows committed, temporary files present) of a store, read without writing."""
    if db_url is not None:
        from sqlalchemy import create_engine, text

        engine = create_engine(db_url)
        try:
            with engine.connect() as connection:
                shards = connection.execute(text("SELECT count(*) FROM shards")).scalar()
        finally:
            engine.dispose()
    else:
        import sqlite3

        uri = f"file:{store / 'catalog.sqlite'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            (shards,) = connection.execute("SELECT count(*) FROM shards").fetchone()
    partial = sum(1 for p in store.rglob("*") if p.is_file() and ".tmp-" in p.name)
    return int(shards), partial


@dataclass
class CrashResult:
    """What one trial found (all the counts must be 0)."""

    command: str
    seed: int
    delay_s: float
    killed: bool  # False: the command's work was over before the kill
    rerun_exit: int
    check_ok: bool
    lost: int = 0
    duplicated: int = 0
    extra: int = 0
    changed: int = 0
    class_mismatch: int = 0
    index_mismatch: int = 0  # reindex: the rebuilt file differs from the crash-free one
    leftovers: int = 0  # temporary or orphan files after the re-run
    committed_at_kill: int = -1  # shard rows (parts of tomograms) the killed run had committed
    partial_at_kill: int = 0  # temporary files the killed run left behind
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.check_ok
            and self.rerun_exit == 0
            and not (self.lost or self.duplicated or self.extra or self.changed)
            and not (self.class_mismatch or self.index_mismatch or self.leftovers)
        )


def crash_trial(world: World, reference: Reference, folder: Path, seed: int) -> CrashResult:
    """Kill ``reference.command`` at a seeded random moment, re-run it, check, compare.

    The moment is uniform over the reference run's work (from "go" to the end of the command,
    the interpreter's exit left out).
    """
    from cosnet_index.store import Store, check_store

    rng = np.random.default_rng(seed)
    delay = float(rng.uniform(0.0, reference.seconds))
    store = world.fresh_store(folder)
    args = command_args(world, reference.command, store)
    proc = start_child(args)
    started = go(proc)
    try:
        proc.wait(timeout=max(0.0, started + delay - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    out, _ = proc.communicate()
    killed = "done" not in out.split()  # False: the command's work was over before the kill
    db_url = world.db_url(store)
    committed_at_kill, partial_at_kill = _state(store, db_url)
    rerun = invoke(args)
    notes = []
    rerun_exit = rerun.exit_code
    if rerun_exit != 0 and reference.command == "classes-add" and "already exists" in rerun.output:
        rerun_exit = 0  # the killed run had committed the class: the same class must be there
        notes.append("class committed before the kill")
    elif (
        rerun_exit != 0
        and reference.command == "tomograms-remove"
        and "no tomogram named" in rerun.output
    ):
        rerun_exit = 0  # the killed run had committed the removal; the re-run repaired the rest
        notes.append("removal committed before the kill")
    elif rerun_exit != 0:
        notes.append(rerun.output.strip()[-500:])
    with Store.open(store, readonly=True, db_url=db_url) as opened:
        report = check_store(opened)
    notes += list(report.problems)
    table, classes = store_content(store, db_url)
    diff = compare_content(reference.table, table)
    class_mismatch = int(set(classes) != set(reference.classes)) + sum(
        not np.array_equal(classes[n], reference.classes[n])
        for n in set(classes) & set(reference.classes)
    )
    index_mismatch = int(
        reference.command == "reindex" and _index_digest(store) != reference.index_digest
    )
    leftovers = [
        p for p in store.rglob("*") if p.is_file() and (".tmp-" in p.name or ".creating-" in p.name)
    ]
    return CrashResult(
        command=reference.command,
        seed=seed,
        delay_s=delay,
        killed=killed,
        rerun_exit=rerun_exit,
        check_ok=report.ok,
        class_mismatch=class_mismatch,
        index_mismatch=index_mismatch,
        committed_at_kill=committed_at_kill,
        partial_at_kill=partial_at_kill,
        leftovers=len(leftovers),
        notes=notes,
        **diff,
    )


def assert_holds_exactly(expected, store) -> None:  # type: ignore[no-untyped-def]
    """``store`` holds exactly the rows and vectors of ``expected`` (:func:`store_content`)."""
    final, _ = store_content(store)
    assert compare_content(expected, final) == {
        "lost": 0,
        "duplicated": 0,
        "extra": 0,
        "changed": 0,
    }
