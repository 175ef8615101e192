"""Bad input: every case fails with a one-line error that says what is wrong and how to fix it,
a non-zero exit code, no traceback, and the store byte-for-byte unchanged.

One parametrised table. Each case copies a prepared store (one tomogram indexed, one class),
writes its bad input next to it, hashes every file of the store, runs the command through click
in this process (``--debug`` off), and hashes again. The read-only case runs in a subprocess as
an unprivileged user when the tests run as root (root ignores file permissions).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from tests._crash_util import (
    CLASS_NAME,
    World,
    invoke,
    make_world,
    store_digest,
    write_tomogram,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("bad-input-world"), n_tomograms=2, n_per_tomogram=5)


@dataclass
class Ctx:
    """What a case's setup may use: the world, its own folder and its own store copy."""

    world: World
    dir: Path
    store: Path

    @property
    def ts01(self) -> Path:
        return self.world.tomograms[0]

    @property
    def ts02(self) -> Path:
        return self.world.tomograms[1]

    def coords_of(self, *names: str) -> Path:
        """The world's coordinates of the named tomograms only."""
        table = pd.read_csv(self.world.coords)
        path = self.dir / f"coords_{'_'.join(names)}.csv"
        table[table["tomogram"].isin(names)].to_csv(path, index=False)
        return path

    def index(self, *tomograms: Path | str, coords: Path | str | None = None, extra=()) -> list:  # type: ignore[no-untyped-def]
        """``index`` of TS_02 (not yet in the store) unless told otherwise."""
        return [
            "index", "--store", self.store, *(tomograms or (self.ts02,)),
            "--coords", coords or self.coords_of("TS_02"), "--no-progress", *extra,
        ]  # fmt: skip

    def mrc(self, name: str, data: np.ndarray, voxel: float = 10.0) -> Path:
        path = self.dir / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns on NaN / Inf data
            with mrcfile.new(path, overwrite=True) as m:
                m.set_data(data)
                m.voxel_size = voxel
        return path

    def csv(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def sql(self, statement: str) -> None:
        """Change the store's catalog directly (a damaged or foreign store)."""
        with sqlite3.connect(self.store / "catalog.sqlite") as connection:
            connection.execute(statement)
        connection.close()


def _volume(shape=(40, 48, 48), seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _copy_ts02(c: Ctx, name: str = "TS_02.mrc") -> Path:
    (c.dir / "other").mkdir(exist_ok=True)
    return Path(shutil.copy(c.ts02, c.dir / "other" / name))


# -- MRC files ---------------------------------------------------------------------------------


def truncated_mrc(c: Ctx) -> list:
    data = c.ts02.read_bytes()
    path = c.dir / "TS_02.mrc"
    path.write_bytes(data[: len(data) // 2])
    return c.index(path)


def corrupt_header(c: Ctx) -> list:
    path = c.dir / "TS_02.mrc"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return c.index(path)


def zero_byte_mrc(c: Ctx) -> list:
    path = c.dir / "TS_02.mrc"
    path.write_bytes(b"")
    return c.index(path)


def complex_mode4(c: Ctx) -> list:
    return c.index(c.mrc("TS_02.mrc", _volume().astype(np.complex64)))


def complex_mode3(c: Ctx) -> list:
    path = c.mrc("TS_02.mrc", _volume())
    with mrcfile.open(path, mode="r+", permissive=True) as m:
        m.header.mode = 3  # complex int16: 4 bytes per voxel, like float32
    return c.index(path)


def nan_voxel(c: Ctx) -> list:
    data = _volume()
    data[30, 10, 10] = np.nan
    return c.index(c.mrc("TS_02.mrc", data))


def inf_voxel(c: Ctx) -> list:
    data = _volume()
    data[3, 40, 5] = -np.inf
    return c.index(c.mrc("TS_02.mrc", data))


def image_2d(c: Ctx) -> list:
    return c.index(c.mrc("TS_02.mrc", _volume()[0]))


def image_stack(c: Ctx) -> list:
    path = c.dir / "TS_02.mrc"
    with mrcfile.new(path) as m:
        m.set_data(_volume())
        m.set_image_stack()
        m.voxel_size = 10.0
    return c.index(path)


def empty_volume(c: Ctx) -> list:
    return c.index(c.mrc("TS_02.mrc", np.zeros((0, 0, 0), np.float32)))


def voxel_size_zero(c: Ctx) -> list:
    return c.index(c.mrc("TS_02.mrc", _volume(), voxel=0.0))


def voxel_size_option_zero(c: Ctx) -> list:
    return c.index(extra=["--voxel-size", "0"])


def voxel_size_option_negative(c: Ctx) -> list:
    return c.index(extra=["--voxel-size", "-5"])


def voxel_size_option_nan(c: Ctx) -> list:
    return c.index(extra=["--voxel-size", "nan"])


def missing_tomogram(c: Ctx) -> list:
    return c.index(c.dir / "TS_02.mrc")


def same_name_twice(c: Ctx) -> list:
    return c.index(c.ts02, _copy_ts02(c))


def name_taken_by_other_file(c: Ctx) -> list:
    path = c.mrc("TS_01.mrc", _volume(seed=9))  # same name as the indexed TS_01, other data
    return c.index(path, coords=c.coords_of("TS_01"))


# -- coordinate files --------------------------------------------------------------------------


def coords_outside(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_02,500,20,20\nTS_02,-90,20,20\n"))


def coords_non_numeric(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_02,24,abc,20\n"))


def coords_infinite(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_02,24,inf,20\n"))


def coords_missing_value(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_02,24,,20\n"))


def coords_missing_column(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y\nTS_02,24,20\n"))


def coords_empty_csv(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", ""))


def coords_header_only_csv(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\n"))


def coords_malformed_csv(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", 'tomogram,x,y,z\nTS_02,1,2,3\n"TS_02,4,5\n6,7,8,9,9,9\n'))


def coords_empty_star(c: Ctx) -> list:
    return c.index(coords=c.csv("c.star", ""))


def coords_malformed_star(c: Ctx) -> list:
    text = (
        "data_particles\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1 2 3 4 5\nnot star {{{\n"
    )
    return c.index(coords=c.csv("c.star", text))


_LOOP = "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"


def coords_star_no_rows(c: Ctx) -> list:
    text = _LOOP + "_rlnCoordinateZ #4\n"
    return c.index(coords=c.csv("c.star", text))


def coords_star_without_xyz(c: Ctx) -> list:
    text = "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnAngleRot #2\nTS_02 10.0\n"
    return c.index(coords=c.csv("c.star", text))


def coords_star_missing_z(c: Ctx) -> list:
    text = _LOOP + "TS_02 24 24\n"
    return c.index(coords=c.csv("c.star", text))


def coords_unknown_tomogram(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_98,24,24,20\nTS_99,24,24,20\n"))


def coords_empty_tomogram_name(c: Ctx) -> list:
    return c.index(coords=c.csv("c.csv", "tomogram,x,y,z\nTS_02,24,24,20\n ,24,24,20\n"))


def coords_no_name_two_tomograms(c: Ctx) -> list:
    tomo3 = write_tomogram(c.dir / "TS_03.mrc", np.zeros((0, 3)))
    return c.index(c.ts02, tomo3, coords=c.csv("c.csv", "x,y,z\n24,24,20\n"))


def coords_missing_file(c: Ctx) -> list:
    return c.index(coords=c.dir / "nope.csv")


def coords_corrupt_parquet(c: Ctx) -> list:
    path = c.dir / "c.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    return c.index(coords=path)


def coords_relion4_without_pixel_size(c: Ctx) -> list:
    text = (
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnTomoTiltSeriesPixelSize #2\n1 2.5\n\n"
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
        "_rlnCoordinateZ #4\n_rlnOpticsGroup #5\nTS_02 96 96 80 2\n"
    )
    return c.index(coords=c.csv("c.star", text))


# -- index options -----------------------------------------------------------------------------


def batch_size_zero(c: Ctx) -> list:
    return c.index(extra=["--batch-size", "0"])


def batch_size_negative(c: Ctx) -> list:
    return c.index(extra=["--batch-size", "-4"])


def edge_unknown(c: Ctx) -> list:
    return c.index(extra=["--edge", "wrap"])


# -- stores --------------------------------------------------------------------------------------


def store_missing(c: Ctx) -> list:
    return ["check", "--store", c.dir / "no-store"]


def store_newer_format(c: Ctx) -> list:
    manifest = json.loads((c.store / "store.json").read_text())
    manifest["format_version"] = 99
    (c.store / "store.json").write_text(json.dumps(manifest))
    return c.index()


def store_newer_schema(c: Ctx) -> list:
    c.sql("UPDATE alembic_version SET version_num = '9999_future'")
    return ["stats", "--store", c.store]


def store_older_schema(c: Ctx) -> list:
    c.sql("UPDATE alembic_version SET version_num = '0001'")
    return c.index()


def store_manifest_corrupt(c: Ctx) -> list:
    (c.store / "store.json").write_text("{not json")
    return ["stats", "--store", c.store]


def store_catalog_missing(c: Ctx) -> list:
    (c.store / "catalog.sqlite").unlink()
    return ["check", "--store", c.store]


def store_bad_db_url(c: Ctx) -> list:
    return ["stats", "--store", c.store, "--db-url", "not a url"]


def store_checkpoint_wrong_hash(c: Ctx) -> list:
    import torch

    (stored,) = (c.store / "models").glob("*.pt")
    payload = torch.load(c.world.other_checkpoint, weights_only=True)
    payload["hash"] = torch.load(stored, weights_only=True)["hash"]  # other weights, our hash
    torch.save(payload, stored)
    return c.index()


class _Evil:
    """A pickle payload whose loading would run code (write a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    with open(path, "wb") as handle:
        pickle.dump({"format": "cosnet-index-checkpoint/1", "payload": _Evil(marker)}, handle)
    return path


def store_checkpoint_pickle(c: Ctx) -> list:
    (stored,) = (c.store / "models").glob("*.pt")
    _evil_checkpoint(stored, c.dir / "MARKER")
    return c.index()


def init_checkpoint_pickle(c: Ctx) -> list:
    evil = _evil_checkpoint(c.dir / "e.pt", c.dir / "MARKER")
    return ["init", "--store", c.dir / "new", "--model", evil]


def init_checkpoint_torch_pickle(c: Ctx) -> list:
    import torch

    path = c.dir / "e.pt"
    torch.save({"format": "cosnet-index-checkpoint/1", "x": _Evil(c.dir / "MARKER")}, path)
    return ["init", "--store", c.dir / "new", "--model", path]


def init_checkpoint_wrong_hash(c: Ctx) -> list:
    import torch

    payload = torch.load(c.world.checkpoint, weights_only=True)
    payload["hash"] = "0" * 64
    torch.save(payload, c.dir / "m.pt")
    return ["init", "--store", c.dir / "new", "--model", c.dir / "m.pt"]


def init_checkpoint_garbage(c: Ctx) -> list:
    (c.dir / "m.pt").write_bytes(np.random.default_rng(0).bytes(1000))  # refused by the unpickler
    return ["init", "--store", c.dir / "new", "--model", c.dir / "m.pt"]


def init_checkpoint_garbage_index_error(c: Ctx) -> list:
    (c.dir / "m.pt").write_bytes(np.random.default_rng(17).bytes(1000))  # torch: IndexError
    return ["init", "--store", c.dir / "new", "--model", c.dir / "m.pt"]


def store_checkpoint_truncated(c: Ctx) -> list:
    (stored,) = (c.store / "models").glob("*.pt")
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 3])
    return c.index()


def init_existing_store(c: Ctx) -> list:
    return ["init", "--store", c.store, "--model", c.world.checkpoint]


# -- classes -------------------------------------------------------------------------------------


def _add(c: Ctx, *args: object) -> list:
    return ["classes", "add", "--store", c.store, *args]


def class_duplicate(c: Ctx) -> list:
    return _add(c, CLASS_NAME, "--subtomogram", "2")


def class_empty_name(c: Ctx) -> list:
    return _add(c, "", "--subtomogram", "2")


def class_whitespace_name(c: Ctx) -> list:
    return _add(c, "   ", "--subtomogram", "2")


def class_bad_characters(c: Ctx) -> list:
    return _add(c, "ribo/some", "--subtomogram", "2")


def class_reserved_unknown(c: Ctx) -> list:
    return _add(c, "unknown", "--subtomogram", "2")


def class_no_example(c: Ctx) -> list:
    return _add(c, "ribosome")


def class_missing_subtomogram(c: Ctx) -> list:
    return _add(c, "ribosome", "--subtomogram", "99999")


def class_non_integer_subtomogram(c: Ctx) -> list:
    return _add(c, "ribosome", "--subtomogram", "abc")


def class_at_edge(c: Ctx) -> list:
    return _add(c, "ribosome", "--at", "TS_01", "1", "1", "1")


def class_at_unknown_tomogram(c: Ctx) -> list:
    return _add(c, "ribosome", "--at", "TS_77", "20", "20", "20")


def class_mrc_not_cube(c: Ctx) -> list:
    return _add(c, "ribosome", "--mrc", c.mrc("box.mrc", _volume((32, 32, 20))))


def class_mrc_nan(c: Ctx) -> list:
    box = _volume((32, 32, 32))
    box[5, 5, 5] = np.nan
    return _add(c, "ribosome", "--mrc", c.mrc("box.mrc", box))


def class_of_other_model(c: Ctx) -> list:
    c.sql(
        "INSERT INTO models (weights_hash, config, checkpoint, source_path, active, created_at) "
        f"VALUES ('{'f' * 64}', '{{}}', 'models/x.pt', 'x.pt', 0, '2026-01-01 00:00:00')"
    )
    c.sql("UPDATE classes SET model_id = (SELECT max(id) FROM models)")
    return ["classify", "--store", c.store, "--classes", CLASS_NAME, "--out", c.dir / "r.parquet"]


def class_remove_unknown(c: Ctx) -> list:
    return ["classes", "remove", "--store", c.store, "ribosome"]


def class_rename_taken(c: Ctx) -> list:
    from cosnet_index.classes import add_class
    from cosnet_index.store import Store

    with Store.open(c.store) as store:
        add_class(store, "second", subtomogram_ids=[2])
    return ["classes", "rename", "--store", c.store, "second", CLASS_NAME]


def class_rename_invalid(c: Ctx) -> list:
    return ["classes", "rename", "--store", c.store, CLASS_NAME, "a b"]


# -- queries -------------------------------------------------------------------------------------


def _classify(c: Ctx, *args: object) -> list:
    return ["classify", "--store", c.store, "--out", c.dir / "r.parquet", *args]


def segment_hits_of_other_model(c: Ctx) -> list:
    from cosnet_index.query import search_store, write_table
    from cosnet_index.store import Store

    with Store.open(c.store, readonly=True) as store:
        hits, meta = search_store(store, CLASS_NAME, k=2)
    path = write_table(hits, c.dir / "hits.parquet", {**meta, "model_hash": "f" * 64})
    return ["segment", "--store", c.store, "--hits", path, "--out", c.dir / "seg", "--no-crf"]


def segment_mass_not_a_number(c: Ctx) -> list:
    return [
        "segment",
        "--store",
        c.store,
        "--class",
        CLASS_NAME,
        "--out",
        c.dir / "seg",
        "--mass-kda",
        f"{CLASS_NAME}=heavy",
    ]


def classify_unknown_class(c: Ctx) -> list:
    return _classify(c, "--classes", "ribosome")


def classify_class_twice(c: Ctx) -> list:
    return _classify(c, "--classes", f"{CLASS_NAME},{CLASS_NAME}")


def classify_min_prob_above_one(c: Ctx) -> list:
    return _classify(c, "--min-prob", "1.5")


def classify_min_prob_negative(c: Ctx) -> list:
    return _classify(c, "--min-prob", "-0.1")


def classify_empty_set(c: Ctx) -> list:
    return _classify(c, "--set", "empty-set")


def classify_unknown_tomogram(c: Ctx) -> list:
    return _classify(c, "--tomogram", "TS_99")


def search_negative_k(c: Ctx) -> list:
    return ["search", "--store", c.store, CLASS_NAME, "-k", "-3"]


def search_zero_k(c: Ctx) -> list:
    return ["search", "--store", c.store, CLASS_NAME, "-k", "0"]


def search_unknown_class(c: Ctx) -> list:
    return ["search", "--store", c.store, "ribosome"]


def search_min_prob_above_one(c: Ctx) -> list:
    return ["search", "--store", c.store, CLASS_NAME, "--min-prob", "2"]


def device_without_gpu(c: Ctx) -> list:
    return c.index(extra=["--device", "cuda:7" if torch_has_cuda() else "cuda"])


def device_unknown(c: Ctx) -> list:
    return c.index(extra=["--device", "tpu9"])


def db_downgrade_unknown_revision(c: Ctx) -> list:
    return ["db", "downgrade", "--store", c.store, "zzz", "--yes"]


def db_upgrade_unknown_revision(c: Ctx) -> list:
    return ["db", "upgrade", "--store", c.store, "--revision", "zzz"]


def export_not_parquet(c: Ctx) -> list:
    (c.dir / "r.parquet").write_text("nope")
    return ["export", "--result", c.dir / "r.parquet", "--out", c.dir / "stars"]


def classify_out_not_parquet(c: Ctx) -> list:
    return ["classify", "--store", c.store, "--out", c.dir / "r.csv"]


def discover_min_prob_one(c: Ctx) -> list:
    return ["discover", "--store", c.store, "--min-prob", "1"]


def torch_has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def reindex_unknown_type(c: Ctx) -> list:
    return ["reindex", "--store", c.store, "--index-type", "hnsw"]


def reindex_ivf_too_few(c: Ctx) -> list:
    return ["reindex", "--store", c.store, "--index-type", "ivf"]


# (case, setup, key phrase of the error: what is wrong / how to fix it)
CASES: list[tuple[Callable[[Ctx], list], str]] = [
    (truncated_mrc, "not a valid mrc file"),
    (corrupt_header, "not a valid mrc file"),
    (zero_byte_mrc, "not a valid mrc file"),
    (complex_mode4, "mode 4"),
    (complex_mode3, "mode '3'"),
    (nan_voxel, "nan or infinite voxels"),
    (inf_voxel, "nan or infinite voxels"),
    (image_2d, "not a 3d volume"),
    (image_stack, "image stack"),
    (empty_volume, "no voxels"),
    (voxel_size_zero, "--voxel-size"),
    (voxel_size_option_zero, "--voxel-size must be a positive"),
    (voxel_size_option_negative, "--voxel-size must be a positive"),
    (voxel_size_option_nan, "--voxel-size must be a positive"),
    (missing_tomogram, "does not exist"),
    (same_name_twice, "must be unique"),
    (name_taken_by_other_file, "already holds a tomogram named"),
    (coords_outside, "outside its volume"),
    (coords_non_numeric, "non-numeric"),
    (coords_infinite, "non-numeric"),
    (coords_missing_value, "non-numeric or missing"),
    (coords_missing_column, "no x, y, z columns"),
    (coords_empty_csv, "is empty"),
    (coords_header_only_csv, "no particle rows"),
    (coords_malformed_csv, "cannot be read"),
    (coords_empty_star, "no data block with rlncoordinatex"),
    (coords_malformed_star, "not a readable star file"),
    (coords_star_no_rows, "no particle rows"),
    (coords_star_without_xyz, "rlncoordinatex"),
    (coords_star_missing_z, "rlncoordinatex"),
    (coords_unknown_tomogram, "ts_99"),
    (coords_empty_tomogram_name, "every particle needs its tomogram name"),
    (coords_no_name_two_tomograms, "no tomogram name column"),
    (coords_missing_file, "does not exist"),
    (coords_corrupt_parquet, "parquet"),
    (coords_relion4_without_pixel_size, "rlntomotiltseriespixelsize"),
    (batch_size_zero, "--batch-size must be a positive integer"),
    (batch_size_negative, "--batch-size must be a positive integer"),
    (edge_unknown, "'--edge'"),
    (store_missing, "cosnet-index init"),
    (store_newer_format, "upgrade cosnet-index"),
    (store_newer_schema, "upgrade cosnet-index"),
    (store_older_schema, "cosnet-index db upgrade"),
    (store_manifest_corrupt, "damaged"),
    (store_catalog_missing, "is missing"),
    (store_bad_db_url, "sqlalchemy database url"),
    (store_checkpoint_wrong_hash, "recorded hash"),
    (store_checkpoint_pickle, "unsafe"),
    (init_checkpoint_pickle, "unsafe"),
    (init_checkpoint_torch_pickle, "unsafe"),
    (init_checkpoint_wrong_hash, "recorded hash"),
    (init_checkpoint_garbage, "corrupt"),
    (init_checkpoint_garbage_index_error, "corrupt"),
    (store_checkpoint_truncated, "corrupt"),
    (init_existing_store, "already exists"),
    (class_duplicate, "already exists"),
    (class_empty_name, "name is empty"),
    (class_whitespace_name, "name is empty"),
    (class_bad_characters, "invalid class name"),
    (class_reserved_unknown, "reserved"),
    (class_no_example, "at least one example"),
    (class_missing_subtomogram, "unknown subtomogram ids"),
    (class_non_integer_subtomogram, "not a subtomogram id"),
    (class_at_edge, "too close to the edge"),
    (class_at_unknown_tomogram, "neither indexed"),
    (class_mrc_not_cube, "cube"),
    (class_mrc_nan, "non-finite"),
    (class_of_other_model, "never mix models"),
    (class_remove_unknown, "no class 'ribosome'"),
    (class_rename_taken, "already exists"),
    (class_rename_invalid, "invalid class name"),
    (segment_hits_of_other_model, "give the store the hits came from"),
    (segment_mass_not_a_number, "molecular mass in kda"),
    (classify_unknown_class, "no class 'ribosome'"),
    (classify_class_twice, "named twice"),
    (classify_min_prob_above_one, "'--min-prob'"),
    (classify_min_prob_negative, "'--min-prob'"),
    (classify_empty_set, "has no class"),
    (classify_unknown_tomogram, "ts_99"),
    (search_negative_k, "'-k'"),
    (search_zero_k, "'-k'"),
    (search_unknown_class, "no class 'ribosome'"),
    (search_min_prob_above_one, "'--min-prob'"),
    (reindex_unknown_type, "'--index-type'"),
    (reindex_ivf_too_few, "use the flat index"),
    (device_unknown, "not a torch device"),
    (db_downgrade_unknown_revision, "cannot migrate the catalog to revision"),
    (db_upgrade_unknown_revision, "cannot migrate the catalog to revision"),
    (export_not_parquet, "cannot read"),
    (classify_out_not_parquet, "must end in .parquet"),
    (discover_min_prob_one, "'--min-prob'"),
]
if not torch_has_cuda():
    CASES.append((device_without_gpu, "no cuda gpu"))


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, f"expected one 'Error:' line, got:\n{output}"
    return lines[0]


@pytest.mark.parametrize(("setup", "phrase"), CASES, ids=[f.__name__ for f, _ in CASES])
def test_bad_input(world: World, tmp_path: Path, setup: Callable[[Ctx], list], phrase: str) -> None:
    ctx = Ctx(world, tmp_path, world.fresh_store(tmp_path))
    args = setup(ctx)
    before = store_digest(ctx.store)
    result = invoke(args)
    after = store_digest(ctx.store)
    output = result.output
    assert result.exit_code != 0, output
    assert isinstance(result.exception, SystemExit), f"unexpected {result.exception!r}\n{output}"
    assert "Traceback" not in output
    line = _error_line(output)
    assert phrase in line.lower(), line
    assert len(line) < 400, f"error too long for one line: {line}"
    assert after == before, f"the store changed: {set(after.items()) ^ set(before.items())}"
    assert not (tmp_path / "MARKER").exists(), "loading a checkpoint executed pickled code"
    assert not (tmp_path / "new").exists(), "a refused init left a store directory"
    assert not list(tmp_path.glob(".new.creating-*")), "a refused init left its staging folder"


def test_debug_shows_the_traceback(world: World, tmp_path: Path) -> None:
    """--debug lets the library error through (click's runner keeps it as the exception)."""
    from cosnet_index.errors import CoordinateError

    ctx = Ctx(world, tmp_path, world.fresh_store(tmp_path))
    result = invoke(["--debug", *coords_non_numeric(ctx)])
    assert isinstance(result.exception, CoordinateError)


def _without_root_powers() -> list[str]:
    """A command prefix under which root obeys file permissions (as any user does)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a store read-only")
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_read_only_store(world: World) -> None:
    """Writing to a store without write permission: one-line error, nothing changes."""
    folder = Path(tempfile.mkdtemp(prefix="cosnet-read-only-"))
    store = world.fresh_store(folder)
    tomogram = Path(shutil.copy(world.tomograms[1], folder / "TS_02.mrc"))
    coords = Path(shutil.copy(world.coords, folder / "coords.csv"))
    for path in [*store.rglob("*"), store]:
        path.chmod(path.stat().st_mode & ~0o222)
    before = store_digest(store)
    args = ["index", "--store", store, tomogram, "--coords", coords, "--no-progress"]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [*_without_root_powers(), sys.executable, "-m", "cosnet_index.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
    )
    output = result.stdout + result.stderr
    try:
        assert result.returncode != 0, output
        assert "Traceback" not in output
        line = _error_line(output)
        assert "read-only" in line or "permission" in line, line
        assert store_digest(store) == before
    finally:
        for path in [store, *store.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        shutil.rmtree(folder, ignore_errors=True)
