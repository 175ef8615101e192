"""Support classes: migration 0002, add/list/remove/rename/sets, names, no re-embedding."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cosnet_index.classes import (
    add_class,
    check_name,
    get_classes,
    list_classes,
    list_sets,
    remove_class,
    rename_class,
)
from cosnet_index.errors import ClassError, CoordinateError, StoreError
from cosnet_index.model import CosNet
from cosnet_index.store import schema
from cosnet_index.store._engine import make_engine
from cosnet_index.store.tables import Base
from tests._classes_util import BOX, ids_by_label

CLASS_TABLES = {"class_sets", "classes", "support_vectors"}


@pytest.fixture
def forward_calls(monkeypatch):
    """Counts every forward pass of any CosNet (embed, decode and forward all go through it)."""
    calls = {"n": 0}
    original = CosNet.forward_features

    def counting(self, x):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return original(self, x)

    monkeypatch.setattr(CosNet, "forward_features", counting)
    return calls


def test_migration_0002_up_down_and_matches_orm(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    schema.upgrade(engine, "0002")
    assert CLASS_TABLES <= set(inspect(engine).get_table_names())
    schema.upgrade(engine, "head")  # the ORM is the head's (0005 adds the class volume)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    ours = [d for d in diffs if any(t in repr(d) for t in CLASS_TABLES)]
    assert ours == []
    schema.downgrade(engine, "0001")
    tables = set(inspect(engine).get_table_names())
    assert not CLASS_TABLES & tables and "subtomograms" in tables
    schema.upgrade(engine, "0002")
    assert CLASS_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.parametrize("bad", ["", "   ", "unknown", "UNKNOWN", "a,b", "-x", "a/b", "x" * 65])
def test_invalid_names_are_refused_with_a_hint(bad):
    with pytest.raises(ClassError, match="name"):
        check_name(bad)


def test_names_are_stripped_and_unique(toy_store_on, toy):
    toy_store = toy_store_on
    ids = ids_by_label(toy_store, toy.truth)
    made = add_class(toy_store, "  ribo  ", subtomogram_ids=[ids["ball"][0]])
    assert made.name == "ribo" and made.shots == 1 and made.set_name == "default"
    with pytest.raises(ClassError, match=r"already exists.*--append"):
        add_class(toy_store, "ribo", subtomogram_ids=[ids["ball"][1]])
    add_class(toy_store, "ribo", subtomogram_ids=[ids["ball"][1]], set_name="other")  # other set
    add_class(toy_store, "cube", subtomogram_ids=[ids["cube"][0]])
    with pytest.raises(ClassError, match="already exists"):
        rename_class(toy_store, "cube", "ribo")
    with pytest.raises(ClassError, match=r"no class 'nope'.*known: cube, ribo"):
        remove_class(toy_store, "nope")
    with pytest.raises(ClassError, match="at least one example"):
        add_class(toy_store, "empty")
    assert list_sets(toy_store) == ["default", "other"]


def test_class_crud_never_embeds_or_changes_the_collection(toy_store_on, toy, forward_calls):
    toy_store = toy_store_on
    ids_before, xb_before = toy_store.load_vectors()
    shards = sorted(p for p in toy_store.path.rglob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in shards]
    ids = ids_by_label(toy_store, toy.truth)
    ball = add_class(toy_store, "ball", subtomogram_ids=ids["ball"][:3])
    np.testing.assert_array_equal(ball.vectors, toy_store.load_vectors(ids["ball"][:3])[1])
    x, y, z = toy.truth.loc[toy.truth["label"] == "rod", ["x", "y", "z"]].iloc[0]
    rod = add_class(toy_store, "rod", at=[("toy", x, y, z)])  # an indexed position: reused
    add_class(toy_store, "rod", subtomogram_ids=[ids["rod"][5]], append=True)
    rename_class(toy_store, "rod", "stick")
    remove_class(toy_store, "ball")
    assert forward_calls["n"] == 0
    assert [(c.name, c.shots) for c in list_classes(toy_store)] == [("stick", 2)]
    assert "subtomogram" in rod.sources[0] and "toy" in rod.sources[0]
    ids_after, xb_after = toy_store.load_vectors()
    np.testing.assert_array_equal(ids_after, ids_before)
    np.testing.assert_array_equal(xb_after, xb_before)
    assert [p.stat().st_mtime_ns for p in shards] == mtimes
    assert toy_store.cpu_index().ntotal == len(ids_before)


def test_examples_outside_the_store_are_embedded_once_like_indexing(toy_store, toy, forward_calls):
    ids = ids_by_label(toy_store, toy.truth)
    row = toy.truth[toy.truth["label"] == "cube"].iloc[2]
    # an MRC box cut at an indexed position embeds to the stored vector of that position
    with mrcfile.open(toy.tomogram_path, permissive=True) as mrc:
        z, y, x = (int(row[c]) for c in "zyx")
        h = BOX // 2
        box = np.array(mrc.data[z - h : z + h, y - h : y + h, x - h : x + h], dtype=np.float32)
    path = toy_store.path.parent / "cube_box.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(box)
        mrc.voxel_size = 10.0
    made = add_class(toy_store, "cube", mrc_paths=[path])
    assert forward_calls["n"] == 1
    table = toy_store.subtomogram_table(ids["cube"])
    sid = int(table[(table["x"] == x) & (table["y"] == y) & (table["z"] == z)]["id"].iloc[0])
    np.testing.assert_allclose(made.vectors[0], toy_store.load_vectors([sid])[1][0], atol=1e-5)
    # a position the store did not index is cut from the tomogram and embedded
    near = add_class(toy_store, "near", at=[("toy", x + 1, y, z)])
    assert forward_calls["n"] == 2 and near.sources[0].startswith("toy")
    with pytest.raises(CoordinateError, match="edge"):
        add_class(toy_store, "edge", at=[("toy", 2.0, 2.0, 2.0)])


def test_classes_of_another_model_are_refused(toy_store, toy):
    ids = ids_by_label(toy_store, toy.truth)
    add_class(toy_store, "ball", subtomogram_ids=[ids["ball"][0]])
    with toy_store.engine.begin() as connection:  # pretend the class came from another model
        from sqlalchemy import text

        connection.execute(
            text(
                "INSERT INTO models (weights_hash, config, checkpoint, source_path, active, "
                "created_at) VALUES ('f00d', '{}', 'x.pt', 'x.pt', 0, '2026-01-01')"
            )
        )
        connection.execute(text("UPDATE classes SET model_id = (SELECT id FROM models "
                                "WHERE weights_hash = 'f00d')"))  # fmt: skip
    with pytest.raises(StoreError, match="never mix"):
        get_classes(toy_store)
    with pytest.raises(StoreError, match="another model"):
        add_class(toy_store, "ball", subtomogram_ids=[ids["ball"][1]], append=True)
    assert list_classes(toy_store)[0].model_hash == "f00d"  # listed, with its model
