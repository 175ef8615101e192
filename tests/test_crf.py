"""The batched torch dense CRF: exact filters, Dice on noisy spheres, agreement with pydensecrf."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.segment import (
    DEFAULT_CRF_PATH,
    CRFParams,
    crf_refine,
    dice,
    load_crf_params,
    mean_field,
    save_crf_params,
    unary_logit,
)
from cosnet_index.segment._filters import (
    axis_factors,
    bilateral_filter,
    bilateral_levels,
    separable_filter,
)
from tests._segment_util import noisy_spheres

NOISE_LEVELS = (0.1, 0.3, 1.0, 2.0)


def _positions(n: int) -> torch.Tensor:
    c = torch.arange(n, dtype=torch.float32)
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)


@pytest.mark.parametrize("theta", [0.7, 3.0, 20.0])
def test_separable_filter_equals_dense_gaussian(theta: float) -> None:
    n = 9
    x = torch.rand(2, n, n, n, generator=torch.Generator().manual_seed(0))
    pos = _positions(n)
    kernel = torch.exp(-(torch.cdist(pos, pos) ** 2) / (2 * theta**2))  # (n^3, n^3)
    expected = (x.reshape(2, -1) @ kernel.T).reshape(x.shape)
    for low_rank in (True, False):
        factors = [axis_factors(n, theta, low_rank=low_rank) for _ in range(3)]
        got = separable_filter(x, factors)
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3 * float(expected.max()))


@pytest.mark.parametrize(("theta_alpha", "theta_beta"), [(1.0, 0.5), (4.0, 1.0), (20.0, 3.0)])
def test_bilateral_quadrature_is_the_dense_kernel_up_to_a_constant(
    theta_alpha: float, theta_beta: float
) -> None:
    n = 8
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, n, n, n, generator=gen)
    intensity = 2 * torch.randn(1, n, n, n, generator=gen)
    factors = [axis_factors(n, theta_alpha) for _ in range(3)]
    got = bilateral_filter(x, bilateral_levels(intensity, theta_beta), factors)
    pos, feat = _positions(n), intensity.reshape(-1)
    kernel = torch.exp(
        -(torch.cdist(pos, pos) ** 2) / (2 * theta_alpha**2)
        - (feat[:, None] - feat[None, :]) ** 2 / (2 * theta_beta**2)
    )
    ratio = got.reshape(-1) / (kernel @ x.reshape(-1))
    # the constant C cancels in the CRF's normalisation; the ripple must stay ~1 %
    assert float(ratio.max() / ratio.min()) < 1.03


@pytest.mark.parametrize(("theta_alpha", "theta_beta"), [(1.0, 0.5), (4.0, 1.0), (26.0, 0.66)])
def test_banded_numba_filter_equals_the_torch_quadrature(
    theta_alpha: float, theta_beta: float
) -> None:
    """The compiled filter visits each voxel's 8 nearest levels only; the rest weigh < 1e-4."""
    from cosnet_index.segment import _bilateral_numba
    from cosnet_index.segment._filters import level_grid

    if not _bilateral_numba.available():
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(2, 12, 10, 14, generator=gen) * 2 - 1
    intensity = 2.5 * torch.randn(2, 12, 10, 14, generator=gen)
    intensity[1] *= 0.3  # a batch-mate with another range
    factors = [axis_factors(n, theta_alpha) for n in x.shape[1:]]
    expected = bilateral_filter(x, bilateral_levels(intensity, theta_beta), factors)
    lo, step, n_levels = level_grid(intensity, theta_beta)
    bands = _bilateral_numba.BandedLevels(intensity, lo, step, n_levels, theta_beta)
    got = _bilateral_numba.banded_bilateral_filter(x, bands, factors)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-4 * float(expected.abs().max()))


def test_numba_kernels_follow_the_torch_thread_count() -> None:
    # --threads / the adaptive count reach the CRF's numba kernels, not every core of the node
    from cosnet_index.segment import _bilateral_numba

    if not _bilateral_numba.available():
        pytest.skip("numba is not installed")
    import numba

    before = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            want = min(count, numba.config.NUMBA_NUM_THREADS)
            assert _bilateral_numba.match_torch_threads() == want
            assert numba.get_num_threads() == want
    finally:
        torch.set_num_threads(before)


def test_early_stopping_keeps_the_masks_of_the_full_iteration_count() -> None:
    params = CRFParams(n_iter=10)
    _, volume, prob = noisy_spheres(4, 1.0, seed=12)
    full = crf_refine(prob, volume, params, tol=0.0)
    early = crf_refine(prob, volume, params)  # default tol
    assert float((early - full).abs().max()) < 0.05
    assert float(dice(early > 0.5, full > 0.5).min()) > 0.995
    # and it did stop early: a tolerance above every change gives the first iteration
    once = crf_refine(prob, volume, params, tol=1.0)
    torch.testing.assert_close(once, crf_refine(prob, volume, CRFParams(n_iter=1), tol=0.0))


def test_zero_iterations_is_the_unary() -> None:
    _, volume, prob = noisy_spheres(2, 0.5, seed=3)
    refined = crf_refine(prob, volume, CRFParams(n_iter=0))
    torch.testing.assert_close(refined, prob.clamp(1e-6, 1 - 1e-6))


def test_zero_weights_keep_the_decoder_mask() -> None:
    truth, volume, prob = noisy_spheres(2, 0.5, seed=4)
    refined = crf_refine(prob, volume, CRFParams(w_spatial=0.0, w_bilateral=0.0, n_iter=5))
    assert torch.equal(refined > 0.5, prob > 0.5)
    assert not torch.equal(truth, prob > 0.5)  # the input was noisy: the check is not vacuous


@pytest.mark.parametrize("noise", NOISE_LEVELS)
def test_crf_never_lowers_dice_on_a_noisy_sphere(noise: float) -> None:
    params = CRFParams()
    truth, volume, prob = noisy_spheres(8, noise, seed=10 + int(10 * noise))
    before = dice(prob > 0.5, truth)
    after = dice(crf_refine(prob, volume, params) > 0.5, truth)
    assert float(after.mean()) >= float(before.mean()), (before.mean(), after.mean())


@pytest.mark.skipif(not DEFAULT_CRF_PATH.is_file(), reason="no shipped CRF parameters")
@pytest.mark.parametrize("snr", [math.inf, 0.5])
def test_shipped_crf_does_not_lower_the_shipped_decoders_dice_on_held_out_maps(snr) -> None:
    """The shipped parameters were fitted to the shipped decoder's probabilities (confident and
    smooth), not to the synthetic noisy unary above, on which they over-smooth; so they are
    checked where they are used: decoder masks of the held-out real maps (never fitted on)."""
    from cosnet_index.model import load_default_model
    from cosnet_index.simulate import simulate_subtomograms
    from cosnet_index.simulate.split import HELDOUT_REAL

    model, info = load_default_model()
    params, _ = load_crf_params(model_hash=info.hash)
    batch = simulate_subtomograms([n for n in HELDOUT_REAL for _ in range(6)], snr, seed=123)
    volume = torch.from_numpy(np.asarray(batch.volumes, dtype=np.float32))
    truth = torch.from_numpy(np.asarray(batch.masks))
    prob = model.decode(volume)
    before = float(dice(prob > 0.5, truth).mean())
    after = float(dice(crf_refine(prob, volume, params) > 0.5, truth).mean())
    assert after >= before, (before, after)


def test_crf_cleans_up_noise() -> None:
    truth, volume, prob = noisy_spheres(8, 1.0, seed=5)
    before = float(dice(prob > 0.5, truth).mean())
    after = float(dice(crf_refine(prob, volume, CRFParams()) > 0.5, truth).mean())
    assert after > before + 0.1


def test_a_box_does_not_depend_on_its_batch_mates() -> None:
    _, volume, prob = noisy_spheres(4, 0.7, seed=6)
    volume[0] *= 5.0  # a batch-mate with a very different intensity range
    together = crf_refine(prob, volume, CRFParams(), batch_size=4)
    alone = crf_refine(prob[1:2], volume[1:2], CRFParams())
    torch.testing.assert_close(together[1:2], alone, atol=1e-4, rtol=0)


def test_mean_field_is_differentiable_in_every_parameter() -> None:
    truth, volume, prob = noisy_spheres(2, 1.0, seed=7)
    start = {"w_spatial": 2.0, "theta_gamma": 1.5, "w_bilateral": 2.0, "theta_alpha": 4.0}
    start["theta_beta"] = 1.0
    values = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    logit = mean_field(unary_logit(prob), volume / volume.std(), n_iter=3, low_rank=False, **values)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, truth.float())
    loss.backward()
    for name, value in values.items():
        assert value.grad is not None and math.isfinite(float(value.grad)), name
        assert float(value.grad) != 0.0, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    _, volume, prob = noisy_spheres(3, 0.7, seed=8)
    cpu = crf_refine(prob, volume, CRFParams())
    gpu = crf_refine(prob.cuda(), volume.cuda(), CRFParams())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


PYDENSECRF_CASES = [
    ("default", CRFParams()),
    ("spatial", CRFParams(w_spatial=3.0, theta_gamma=1.5, w_bilateral=0.0)),
    ("bilateral", CRFParams(w_spatial=0.0, w_bilateral=5.0, theta_alpha=8.0, theta_beta=1.0)),
    ("wide", CRFParams(w_spatial=2.0, theta_gamma=3.0, w_bilateral=4.0, theta_alpha=16.0)),
]


@pytest.mark.parametrize(("name", "params"), PYDENSECRF_CASES)
def test_torch_crf_agrees_with_pydensecrf(name: str, params: CRFParams) -> None:
    pytest.importorskip(
        "pydensecrf.densecrf", reason="pydensecrf2 (the `crf` extra) is not installed"
    )
    from cosnet_index.segment.reference import crf_refine_pydensecrf

    _, volume, prob = noisy_spheres(6, 1.0, seed=9)
    ours = crf_refine(prob, volume, params) > 0.5
    theirs = torch.from_numpy(crf_refine_pydensecrf(prob, volume, params) > 0.5)
    agreement = dice(ours, theirs)
    assert float(agreement.mean()) >= 0.95, (name, agreement)
    # the CRF changed the masks a lot, so the agreement is not just both keeping the input
    assert float(dice(ours, prob > 0.5).mean()) < 0.9, name


def test_params_validate_and_round_trip(tmp_path) -> None:
    with pytest.raises(InputError, match="theta_beta"):
        CRFParams(theta_beta=0.0)
    with pytest.raises(InputError, match="n_iter"):
        CRFParams(n_iter=-1)
    params = CRFParams(w_spatial=1.25, n_iter=3)
    path = save_crf_params(params, tmp_path / "crf.json", metadata={"model_hash": "abc123"})
    loaded, meta = load_crf_params(path, model_hash="abc123")
    assert loaded == params and meta["model_hash"] == "abc123"
    with pytest.raises(CheckpointError, match="fitted for model"):
        load_crf_params(path, model_hash="other")
    path.write_text(json.dumps({"params": {"w_spatial": 1.0, "bogus": 2}}))
    with pytest.raises(CheckpointError, match="bogus"):
        load_crf_params(path)
    with pytest.raises(CheckpointError, match="no CRF parameters"):
        load_crf_params(tmp_path / "missing.json")


def test_dice() -> None:
    a = np.zeros((3, 4, 4, 4), dtype=bool)
    b = np.zeros_like(a)
    a[0, :2] = True
    b[0, :2] = True  # identical
    a[1, :2] = True
    b[1, 2:] = True  # disjoint
    a[2, 0, 0, :2] = True
    b[2, 0, 0, 1:3] = True  # 1 of 2 + 2 voxels
    np.testing.assert_allclose(dice(a, b).numpy(), [1.0, 0.0, 0.5])
    assert float(dice(np.zeros((1, 2)), np.zeros((1, 2)))[0]) == 1.0
    with pytest.raises(InputError):
        dice(a, b[:2])
