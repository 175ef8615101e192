"""The training campaign: one microscope per collection, the broad preset, the imaging mix, the
training loop's chunk/worker/signal behaviour, and the learning-curve tools."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import pathlib
import signal

import numpy as np
import pytest
import torch
from _model_util import toy_simulate

from cosnet_index.benchmark import HardConfig
from cosnet_index.benchmark._hard_simulation import episode_collections
from cosnet_index.data.imaging_mix import ImagingMix, parse_imaging_mix
from cosnet_index.errors import InputError
from cosnet_index.model import CosNetConfig, load_checkpoint, save_checkpoint
from cosnet_index.model.cosnet import CosNet
from cosnet_index.simulate import simulate_subtomograms
from cosnet_index.simulate.microscope import IMAGING_PRESETS, SHIFTED_FIELDS
from cosnet_index.simulate.reconstruction._fourier_form import _batch_filters, _filters
from cosnet_index.train import TrainConfig, train
from cosnet_index.train._stream import episode_stream
from cosnet_index.train.loop import _lr_factor
from cosnet_index.train.loss import _decoder_rows

TINY = CosNetConfig(widths=(4, 4, 4), convs_per_level=1)
SHARED = ("voxel_mismatch", "tilt_min_deg", "tilt_max_deg", "resolution_nm", "noise_colour")


def test_broad_training_never_draws_a_shifted_value_and_brackets_it() -> None:
    broad, shifted = IMAGING_PRESETS["broad"], IMAGING_PRESETS["shifted"]
    rng = np.random.default_rng(1)
    train_draws = [broad.sample(rng) for _ in range(400)]
    test_draws = [shifted.sample(rng) for _ in range(400)]
    for field in SHIFTED_FIELDS:
        # shifted never uses a phase plate; contains() reads a phase plate's own defocus range
        draws = [d for d in train_draws if not (field == "defocus_um" and d.phase_plate)]
        assert not any(shifted.contains(d, field) for d in draws), field
        assert not any(broad.contains(d, field) for d in test_draws), field
    gap = [abs(a.defocus_um - b.defocus_um) for a in train_draws for b in test_draws]
    assert min(gap) >= 0.5  # nominal settings: particles of a collection spread +-0.5 um
    half_tilts = [(d.tilt_max_deg - d.tilt_min_deg) / 2 for d in train_draws]
    assert min(half_tilts) < 40 and max(half_tilts) > 48  # wedges on both sides of the test's
    defoci = [d.defocus_um for d in train_draws if not d.phase_plate]
    assert min(defoci) < -8.5 and max(defoci) > -3.0


def test_a_collection_shares_its_microscope_and_varies_per_particle() -> None:
    ranges = IMAGING_PRESETS["broad"]
    a = ranges.sample_collection(np.random.default_rng(3), 20)
    assert a == ranges.sample_collection(np.random.default_rng(3), 20)  # seeded
    for field in SHARED:
        assert len({getattr(im, field) for im in a}) == 1, field
    defoci = [im.defocus_um for im in a]
    assert max(defoci) - min(defoci) <= 1.0 and len(set(defoci)) == 20
    assert len({im.particle_z_nm for im in a}) == 20


def test_collections_give_boxes_of_one_id_one_microscope() -> None:
    names = ["apoferritin_6z6u", "proc-00003", "proc-00004", "proc-00005"]
    batch = simulate_subtomograms(names, 0.5, 2, imaging="broad", collections=[7, 7, 3, 3])
    again = simulate_subtomograms(names, 0.5, 2, imaging="broad", collections=[7, 7, 3, 3])
    np.testing.assert_array_equal(batch.volumes, again.volumes)
    im = batch.imaging
    assert im[0].voxel_mismatch == im[1].voxel_mismatch != im[2].voxel_mismatch
    assert im[2].tilt_max_deg == im[3].tilt_max_deg
    assert im[0].defocus_um != im[1].defocus_um
    per_box = simulate_subtomograms(names, 0.5, 2, imaging="broad")
    assert len({i.voxel_mismatch for i in per_box.imaging}) == 4
    with pytest.raises(InputError, match="one id per name"):
        simulate_subtomograms(names, 0.5, 2, imaging="broad", collections=[0, 1])


def test_batched_filters_equal_the_per_box_filters() -> None:
    ranges = IMAGING_PRESETS["broad"]
    rng = np.random.default_rng(5)
    imagings = [*ranges.sample_collection(rng, 5), ranges.sample(rng), ranges.sample(rng)]
    transfer, noise = _batch_filters(imagings, 16, 1.0, 2.5, "cpu")
    for k, im in enumerate(imagings):
        t, n = _filters(im, 16, 1.0, 2.5, "cpu")
        torch.testing.assert_close(transfer[k], t, rtol=0, atol=1e-6)
        torch.testing.assert_close(noise[k], n, rtol=0, atol=1e-6)


def test_imaging_mix_parses_chooses_and_shares_per_episode() -> None:
    mix = parse_imaging_mix("paper:1, broad:3", per="collection", cross_collection=0.5)
    assert mix.presets == ("paper", "broad") and mix.weights == (1.0, 3.0)
    assert mix.spec == "paper:1,broad:3"
    picks = [mix.choose(s) for s in range(400)]
    assert picks == [mix.choose(s) for s in range(400)]
    share = sum(p == "broad" for p, _ in picks) / len(picks)
    assert 0.65 < share < 0.85  # 3 of 4
    assert 0.4 < sum(c for _, c in picks) / len(picks) < 0.6
    seed = next(s for s in range(100) if mix.choose(s) == ("broad", False))
    names = ["proc-00001", "proc-00002"] * 2
    batch = mix(names, 1.0, seed)
    assert len({im.voxel_mismatch for im in batch.imaging}) == 1  # one collection
    seed = next(s for s in range(100) if mix.choose(s) == ("broad", True))
    batch = mix(names, 1.0, seed)
    assert batch.imaging[0].voxel_mismatch == batch.imaging[1].voxel_mismatch
    assert batch.imaging[0].voxel_mismatch != batch.imaging[2].voxel_mismatch  # A vs B
    assert mix.to_dict()["ranges"]["broad"]["name"] == "broad"
    for bad, match in [("paper:x", "weight"), ("nope", "preset"), ("paper:0", "not all 0")]:
        with pytest.raises(InputError, match=match):
            parse_imaging_mix(bad)
    with pytest.raises(InputError, match="per"):
        ImagingMix(per="tomogram")


def test_benchmark_episodes_are_collections() -> None:
    assert episode_collections("box", 2, 3) is None
    assert episode_collections("same", 2, 3) == [0, 0, 0, 1, 1, 1, 0, 1]
    assert episode_collections("cross", 2, 3) == [0, 0, 0, 2, 2, 2, 1, 3]
    with pytest.raises(InputError, match="collection"):
        HardConfig(collection="microscope")


def test_decoder_rows_take_a_fraction_of_each_set() -> None:
    from cosnet_index.data import EpisodeSampler

    sampler = EpisodeSampler(["ball", "cube", "rod", "ring"], ways=4, simulate=toy_simulate)
    episodes = [sampler.episode(0), sampler.episode(1)]
    assert _decoder_rows(episodes, 1.0) is None
    assert _decoder_rows(episodes, 0.25).tolist() == [0, 4, 8, 12]
    assert _decoder_rows(episodes, 0.5).tolist() == [0, 1, 4, 5, 8, 9, 12, 13]
    with pytest.raises(InputError, match="decoder_fraction"):
        TrainConfig(decoder_fraction=0.0)


def test_constant_schedule_keeps_the_rate_after_warm_up() -> None:
    config = TrainConfig(steps=100, warmup_steps=10, schedule="constant")
    assert _lr_factor(0, config) == pytest.approx(0.1)
    assert _lr_factor(99, config) == 1.0
    assert _lr_factor(99, dataclasses.replace(config, schedule="cosine")) < 0.1
    with pytest.raises(InputError, match="schedule"):
        TrainConfig(schedule="linear")


def test_the_worker_process_streams_the_same_episodes_as_the_thread() -> None:
    from cosnet_index.data import EpisodeSampler

    sampler = EpisodeSampler(["ball", "cube", "rod"], ways=2, snrs=[1.0], simulate=toy_simulate)

    def draw(step: int) -> list:
        return [sampler.episode(step)]

    config = TrainConfig(steps=6, sim_workers=0)
    thread = list(episode_stream(draw, 2, config))
    assert [s for s, _ in thread] == [2, 3, 4, 5]
    for workers in (1, 2):  # more workers than cores makes torch warn
        streamed = list(episode_stream(draw, 2, dataclasses.replace(config, sim_workers=workers)))
        assert [s for s, _ in streamed] == [2, 3, 4, 5]  # in step order, each step once
        for (_, a), (_, b) in zip(thread, streamed, strict=True):
            torch.testing.assert_close(a[0].volumes_a, b[0].volumes_a)


def test_sigterm_checkpoints_and_the_run_resumes(tmp_path: pathlib.Path) -> None:
    config = TrainConfig(
        steps=8,
        ways=2,
        episodes_per_step=1,
        snrs=(1.0,),
        snr_weights=(1.0,),
        clean_steps=0,
        checkpoint_every=100,
        schedule="constant",
        decoder_fraction=0.5,
    )

    def stop_at_three(row: dict) -> None:
        if row["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    shapes = ["ball", "cube", "rod"]
    path = train(tmp_path, shapes, TINY, config, simulate=toy_simulate, progress=False,
                 on_step=stop_at_three)  # fmt: skip
    _, info = load_checkpoint(path)
    assert info.metadata["step"] == 3  # stopped after the step, with a checkpoint
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    path = train(tmp_path, shapes, TINY, config, simulate=toy_simulate, progress=False,
                 resume=True)  # fmt: skip
    _, info = load_checkpoint(path)
    assert info.metadata["step"] == 8
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))


def test_the_weight_average_follows_every_step_and_survives_a_resume(
    tmp_path: pathlib.Path,
) -> None:
    decay = 0.75
    config = TrainConfig(steps=3, ways=2, episodes_per_step=1, snrs=(1.0,), snr_weights=(1.0,),
                         clean_steps=0, checkpoint_every=1, keep_every=1, schedule="constant",
                         warmup_steps=1, ema_decay=decay)  # fmt: skip

    def stop_at_two(row: dict) -> None:
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    shapes = ["ball", "cube", "rod"]
    train(tmp_path, shapes, TINY, config, simulate=toy_simulate, progress=False,
          on_step=stop_at_two)  # fmt: skip
    train(tmp_path, shapes, TINY, config, simulate=toy_simulate, progress=False, resume=True)

    def weights(name: str) -> dict[str, torch.Tensor]:
        model, _ = load_checkpoint(tmp_path / name)
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    iterate = [weights(f"step_{k:06d}.pt") for k in (1, 2, 3)]
    average = [weights(f"step_{k:06d}_ema.pt") for k in (1, 2, 3)]
    expected = dict(iterate[0])  # the average starts as the first iterate
    for k in range(3):
        for name, value in average[k].items():
            torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)
        if k < 2:  # ... and then follows decay * average + (1 - decay) * iterate, across the resume
            expected = {n: decay * expected[n] + (1 - decay) * iterate[k + 1][n] for n in expected}
    assert any(not torch.equal(average[2][n], iterate[2][n]) for n in iterate[2])
    assert load_checkpoint(tmp_path / "ema.pt")[1].metadata["ema_decay"] == decay
    with pytest.raises(InputError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_a_restart_from_committed_weights_continues_the_counters_and_warms_up_again(
    tmp_path: pathlib.Path,
) -> None:
    """A campaign whose run folder is gone restarts from its committed weights: the step and the
    training hours go on from theirs (the curve's x axis), the episode stream goes on from that
    step, and the warm-up of the fresh optimiser counts from the restart, across a resume."""
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    save_checkpoint(CosNet(TINY), start, step=40, wall_s=7200.0)
    config = TrainConfig(steps=44, ways=2, episodes_per_step=1, snrs=(1.0,), snr_weights=(1.0,),
                         clean_steps=0, checkpoint_every=1, schedule="constant", warmup_steps=4,
                         lr=1e-3, init_from=str(start), continue_counters=True)  # fmt: skip
    shapes = ["ball", "cube", "rod"]

    def stop_at_42(row: dict) -> None:
        if row["step"] == 42:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "run"
    train(run, shapes, TINY, config, simulate=toy_simulate, progress=False, on_step=stop_at_42)
    path = train(run, shapes, TINY, config, simulate=toy_simulate, progress=False, resume=True)
    meta = load_checkpoint(path)[1].metadata
    assert meta["step"] == 44 and meta["wall_s"] >= 7200.0
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [41, 42, 43, 44]
    assert [float(r["lr"]) for r in rows] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert all(float(r["wall_s"]) >= 7200.0 for r in rows)
    # without the flag a run from the same weights starts its own counters
    plain = dataclasses.replace(config, continue_counters=False, steps=1)
    path = train(tmp_path / "plain", shapes, TINY, plain, simulate=toy_simulate, progress=False)
    assert load_checkpoint(path)[1].metadata["step"] == 1
    assert _lr_factor(41, config, warmup_from=40) == pytest.approx(0.5)
    assert _lr_factor(3, config) == pytest.approx(1.0)


def test_campaign_chunk_resumes_and_the_curve_is_kept(tmp_path: pathlib.Path) -> None:
    from cosnet_index import campaign

    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    save_checkpoint(CosNet(TINY), start)
    run = tmp_path / "run"
    path, full = campaign.run_chunk(run, 0.02, init_from=str(start), classes="train-real,proc:0-5",
                                    progress=False)  # fmt: skip
    assert full and path.is_file() and path.name == "ema.pt"  # the weight average is evaluated
    first = load_checkpoint(path)[1].metadata
    assert first["data_manifest"]["imaging_mix"]["per"] == "collection"
    assert first["train_config"]["schedule"] == "constant"
    path, _ = campaign.run_chunk(run, 0.02, classes="train-real,proc:0-5", progress=False)
    assert load_checkpoint(path)[1].metadata["step"] > first["step"]  # resumed, not restarted

    result = campaign.evaluate_candidate(path, episodes=2, tables=(("paper", "same"),))
    cells = result["cells"]
    assert set(cells) == {"paper/same/1000", "paper/same/0.5", "paper/same/0.1"}
    assert all(c["episodes"] == 2 and 0 <= c["accuracy"] <= 1 for c in cells.values())
    curve = tmp_path / "curve.csv"
    campaign.append_curve(curve, result, "a")
    campaign.append_curve(curve, result, "b")
    with open(curve, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["a", "b"]
    assert float(rows[0]["paper/same/0.5/accuracy"]) == pytest.approx(
        cells["paper/same/0.5"]["accuracy"], abs=1e-4
    )
    campaign.plot_curve(curve, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"

    half = campaign.export_fp16(path, tmp_path / "w16.pt")
    model16, _ = load_checkpoint(half)
    model32, _ = load_checkpoint(path)
    assert half.stat().st_size < 0.75 * path.stat().st_size
    for (name, a), b in zip(model32.state_dict().items(), model16.state_dict().values(),
                            strict=True):  # fmt: skip
        if a.is_floating_point():
            assert b.dtype == torch.float32, name
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert not math.isnan(float(model16.head_bias))
