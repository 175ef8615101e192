"""Checkpoints: round trip, content hash, refusal of unsafe or tampered files."""

from __future__ import annotations

import os
import pathlib
import pickle

import pytest
import torch

from cosnet_index.errors import CheckpointError
from cosnet_index.model import (
    CosNet,
    CosNetConfig,
    compute_hash,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

TINY = CosNetConfig(widths=(4, 8, 8))


def _model(seed: int = 0) -> CosNet:
    torch.manual_seed(seed)
    return CosNet(TINY)


def test_round_trip_keeps_weights_config_hash_metadata(tmp_path: pathlib.Path) -> None:
    model = _model()
    path = tmp_path / "m.pt"
    digest = save_checkpoint(model, path, command="cosnet-index train --seed 0", seed=0)
    assert digest == model.weights_hash == compute_hash(model)
    loaded, info = load_checkpoint(path)
    assert info.hash == digest == loaded.weights_hash
    assert info.config == TINY and loaded.config == TINY
    assert info.metadata == {"command": "cosnet-index train --seed 0", "seed": 0}
    x = torch.randn(2, 32, 32, 32)
    torch.testing.assert_close(loaded.embed(x), model.embed(x))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_hash_changes_with_weights_and_config(tmp_path: pathlib.Path) -> None:
    model = _model()
    before = model.weights_hash
    with torch.no_grad():
        model.fc2.bias[0] += 1e-3
    assert model.weights_hash != before
    assert _model(1).weights_hash != _model(0).weights_hash
    assert _model(0).weights_hash == _model(0).weights_hash


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cosnet_pwned_should_not_exist",))


def test_pickle_payload_is_refused_without_running_it(tmp_path: pathlib.Path) -> None:
    marker = pathlib.Path("/tmp/cosnet_pwned_should_not_exist")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"format": "x", "payload": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(path)
    torch.save({"format": "x", "payload": _Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(tmp_path / "evil2.pt")
    assert not marker.exists()


def test_tampered_weights_fail_the_hash(tmp_path: pathlib.Path) -> None:
    model = _model()
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["fc2.bias"][0] += 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match its recorded hash"):
        load_checkpoint(path)


def test_truncated_missing_and_foreign_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(_model(), path)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a cosnet-index checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_metadata_must_be_json(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(_model(), tmp_path / "m.pt", bad=object())


def test_default_path_is_in_package() -> None:
    assert default_checkpoint_path().parts[-2:] == ("weights", "cosnet.pt")
