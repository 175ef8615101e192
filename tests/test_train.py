"""Episodic training: balanced loss, loss goes down, resumable runs, samplers are seeded."""

from __future__ import annotations

import csv
import math
import pathlib

import pytest
import torch
from _model_util import toy_simulate

from cosnet_index.data import EpisodeSampler
from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.model import CosNet, CosNetConfig, load_checkpoint
from cosnet_index.train import TrainConfig, episode_loss, train

TINY = CosNetConfig(widths=(4, 8, 8), convs_per_level=1)
SHAPES = ["ball", "cube", "rod", "ring"]


def test_sampler_is_seeded_and_pairs_classes() -> None:
    sampler = EpisodeSampler(SHAPES, ways=3, snrs=[math.inf, 1.0], seed=3, simulate=toy_simulate)
    a, b = sampler.episode(5), sampler.episode(5)
    assert a.classes == b.classes and a.snr == b.snr
    assert torch.equal(a.volumes_a, b.volumes_a)
    assert a.volumes_a.shape == a.volumes_b.shape == (3, 32, 32, 32)
    assert a.masks_a.dtype == torch.bool
    assert not torch.equal(a.volumes_a, a.volumes_b)  # independent poses of the same classes
    with pytest.raises(InputError):
        EpisodeSampler(SHAPES, ways=5, simulate=toy_simulate)


def test_episode_loss_is_balanced() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY)
    sampler = EpisodeSampler(SHAPES, ways=4, snrs=[math.inf], simulate=toy_simulate)
    with torch.no_grad():
        model.head_v.fill_(-30.0)  # w ~ 0: every pair gets p = sigmoid(b)
        model.head_b.fill_(0.0)
    parts = episode_loss(model, [sampler.episode(0)])
    # balanced BCE at p = 0.5 is log 2 whatever the positive fraction
    assert float(parts["bce"]) == pytest.approx(math.log(2), abs=1e-4)


def test_metric_term_is_the_softmax_over_supports() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY)
    sampler = EpisodeSampler(SHAPES, ways=4, snrs=[math.inf], simulate=toy_simulate)
    with torch.no_grad():
        model.head_v.fill_(-30.0)  # w ~ 0: all logits equal, so the softmax is uniform
    episode = sampler.episode(0)
    model.eval()
    with torch.no_grad():
        off = episode_loss(model, [episode])
        on = episode_loss(model, [episode], metric_weight=0.5)
    assert float(off["metric"]) == 0.0
    assert float(on["metric"]) == pytest.approx(math.log(4), abs=1e-4)  # uniform over 4 ways
    expected = float(off["loss"]) + 0.5 * math.log(4)
    assert float(on["loss"]) == pytest.approx(expected, abs=1e-4)


def test_few_steps_lower_the_loss_on_two_classes() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sampler = EpisodeSampler(["ball", "rod"], ways=2, snrs=[10.0], seed=0, simulate=toy_simulate)
    fixed = [sampler.episode(1000 + i) for i in range(4)]
    with torch.no_grad():
        model.eval()
        before = float(episode_loss(model, fixed)["loss"])
    model.train()
    for step in range(25):
        parts = episode_loss(model, [sampler.episode(2 * step), sampler.episode(2 * step + 1)])
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(episode_loss(model, fixed)["loss"])
    assert after < 0.8 * before
    assert bool((model.head_w <= 0).all())


def test_train_writes_checkpoints_metrics_and_resumes(tmp_path: pathlib.Path) -> None:
    config = TrainConfig(
        steps=4,
        ways=2,
        episodes_per_step=1,
        checkpoint_every=2,
        keep_every=2,
        snrs=(math.inf,),
        snr_weights=(1.0,),
        clean_steps=0,
        warmup_steps=1,
    )
    out = tmp_path / "run"
    path = train(out, SHAPES, TINY, config, simulate=toy_simulate, progress=False, command="test")
    _, info = load_checkpoint(path)
    assert info.metadata["step"] == 4 and info.metadata["seed"] == 0
    assert info.metadata["command"] == "test"
    assert (out / "step_000002.pt").is_file()
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    longer = TrainConfig(**{**config.__dict__, "steps": 6})
    train(out, SHAPES, TINY, longer, simulate=toy_simulate, progress=False, resume=True)
    _, info2 = load_checkpoint(out / "last.pt")
    assert info2.metadata["step"] == 6 and info2.hash != info.hash
    with open(out / "metrics.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(
            tmp_path / "empty",
            SHAPES,
            TINY,
            config,
            simulate=toy_simulate,
            progress=False,
            resume=True,
        )


def test_training_classes_refuse_every_heldout_class() -> None:
    from cosnet_index.simulate.split import heldout_classes, training_classes

    names = training_classes("train-real,lib-train,proc:0-9")
    assert "ribosome70S_4v5d" in names and any(n.startswith("lib-") for n in names)
    assert not set(names) & heldout_classes()
    for spec in (
        "lib-heldout-small",
        "heldout-real",
        "proc:99990-100000",
        "train-real,lib-heldout",
    ):
        with pytest.raises(InputError, match="held-out classes in the training spec"):
            training_classes(spec)


def test_fine_tune_on_realistic_imaging_records_its_data(tmp_path: pathlib.Path) -> None:
    from cosnet_index.model import save_checkpoint

    torch.manual_seed(1)
    start = CosNet(TINY)
    save_checkpoint(start, tmp_path / "start.pt")
    config = TrainConfig(
        steps=1,
        ways=2,
        episodes_per_step=1,
        snrs=(1.0,),
        snr_weights=(1.0,),
        clean_steps=0,
        crowding_fraction=0.0,
        imaging="realistic",
        init_from=str(tmp_path / "start.pt"),
    )
    other = CosNetConfig(widths=(4, 4, 4), convs_per_level=1)  # ignored: the start's is kept
    classes = ["gltph_2nwl", "mtor_4jsv"]
    path = train(tmp_path / "ft", classes, other, config, progress=False)
    model, info = load_checkpoint(path)
    assert model.config == TINY
    manifest = info.metadata["data_manifest"]
    assert manifest["imaging_preset"] == "realistic"
    assert manifest["real_molecules"] == sorted(classes)
    assert manifest["imaging_ranges"]["name"] == "realistic"
    with pytest.raises(InputError, match="imaging preset"):
        train(tmp_path / "bad", classes, TINY, TrainConfig(steps=1, ways=2, imaging="nope"))
    assert not (tmp_path / "bad").exists()


def test_simulator_hash_covers_every_module_of_simulate() -> None:
    """Every ``.py`` under ``simulate/``, subpackages included, in sorted relative-path order."""
    import hashlib
    from pathlib import Path

    import cosnet_index.simulate
    from cosnet_index.data.provenance import simulator_source_hash

    root = Path(cosnet_index.simulate.__file__).parent
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.py"))
    assert any("/" in name for name, _ in files)  # the subpackages count
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + path.read_bytes())
    assert simulator_source_hash() == digest.hexdigest()
