"""Checksums (issue 30): one flipped byte in a shard, the FAISS file or the model file is found by
`check` (exit 1, the file named), queries refuse the store, and `repair` restores a store that
`check` passes, with the vectors of the undisturbed store. Stores made before the checksums
(schema revision 0006) keep working and get them from `repair`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cosnet_index.errors import StoreDamagedError
from tests._crash_util import assert_holds_exactly, invoke, store_content


def _indexed_store(tmp_path: Path, tiny_model, collection) -> Path:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    assert invoke(["init", "--store", store, "--model", tiny_model[0]]).exit_code == 0
    result = invoke(
        ["index", "--store", store, *collection["tomograms"], "--coords", collection["star"],
         "--no-progress"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    added = invoke(["classes", "add", "--store", store, "blob", "--subtomogram", "1"])
    assert added.exit_code == 0, added.output
    return store


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _file_of(store: Path, kind: str) -> Path:
    if kind == "shard":
        return sorted((store / "shards").rglob("*.parquet"))[0]
    if kind == "index":
        return next((store / "index").glob("*.faiss"))
    return next((store / "models").glob("*.pt"))


@pytest.mark.parametrize("kind", ["shard", "index", "model"])
def test_a_flipped_byte_is_found_and_repaired(tmp_path, tiny_model, collection, kind) -> None:
    from cosnet_index.store import Store

    store = _indexed_store(tmp_path, tiny_model, collection)
    assert invoke(["check", "--store", store]).exit_code == 0
    expected, _ = store_content(store)
    damaged = _file_of(store, kind)
    _flip_middle_byte(damaged)

    check = invoke(["check", "--store", store])
    assert check.exit_code == 1
    relative = damaged.relative_to(store).as_posix()
    (line,) = [line for line in check.output.splitlines() if relative in line]
    assert "damaged" in line
    assert {"shard": "repair", "index": "reindex", "model": "repair"}[kind] in line
    if kind == "shard":
        assert "TS_0" in line  # the tomogram to embed again
    with Store.open(store) as opened, pytest.raises(StoreDamagedError, match="repair"):
        opened.cpu_index()
    search = invoke(["search", "--store", store, "blob", "--cpu"])
    assert search.exit_code == 1 and "Traceback" not in search.output
    assert "damaged" in search.output and "cosnet-index repair" in search.output

    repair = invoke(["repair", "--store", store])
    assert repair.exit_code == 0, repair.output
    check = invoke(["check", "--store", store])
    assert check.exit_code == 0, check.output
    assert_holds_exactly(expected, store)
    with Store.open(store) as opened:
        assert opened.cpu_index().ntotal == len(expected)


def test_quick_check_skips_the_checksums(tmp_path, tiny_model, collection) -> None:
    store = _indexed_store(tmp_path, tiny_model, collection)
    quick = invoke(["check", "--store", store, "--quick"])
    assert quick.exit_code == 0 and "checksums not verified" in quick.output
    full = invoke(["check", "--store", store])
    assert full.exit_code == 0 and "every recorded checksum matches" in full.output


def test_a_store_without_checksums_keeps_working(tmp_path, tiny_model, collection) -> None:
    """As a store of revision 0005 upgraded to 0006 is: no checksum anywhere."""
    from sqlalchemy import delete, update

    from cosnet_index.store import Store
    from cosnet_index.store.tables import IndexFileRecord, ModelRecord, ShardRecord

    store = _indexed_store(tmp_path, tiny_model, collection)
    with Store.open(store) as opened, opened.session() as session:
        session.execute(update(ShardRecord).values(checksum=None))
        session.execute(update(ModelRecord).values(checksum=None))
        session.execute(delete(IndexFileRecord))
    check = invoke(["check", "--store", store])
    assert check.exit_code == 0, check.output
    assert "2 shard file(s), 1 index file(s), 1 model file(s) have no checksum" in check.output
    assert "cosnet-index repair" in check.output
    assert "shards/" in check.output and ".faiss" in check.output  # which files
    repair = invoke(["repair", "--store", store])
    assert repair.exit_code == 0 and "recorded the checksums of 4 files" in repair.output
    check = invoke(["check", "--store", store])
    assert check.exit_code == 0 and "no checksum" not in check.output
    _flip_middle_byte(_file_of(store, "shard"))  # now found
    assert invoke(["check", "--store", store]).exit_code == 1
