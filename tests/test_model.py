"""COS-Net model: shapes, DuSE independence, head sign, the L1 identity."""

from __future__ import annotations

import pytest
import torch

from cosnet_index.errors import InputError
from cosnet_index.model import CosNet, CosNetConfig, DuSE, normalize_boxes

TINY = CosNetConfig(widths=(4, 8, 8))


def _boxes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 32, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_shapes_forward_embed_decode() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY)
    x = _boxes(3)
    out = model(x, _boxes(3, 1))
    assert out["p"].shape == (3,)
    assert out["mask_support"].shape == (3, 32, 32, 32)
    assert out["mask_target"].shape == (3, 32, 32, 32)
    assert model.forward_features(normalize_boxes(x.unsqueeze(1))).shape == (3, 8, 8, 8, 8)
    emb = model.embed(x)
    assert emb.shape == (3, 512) and emb.dtype == torch.float32
    assert model.embed(x.unsqueeze(1)).shape == (3, 512)
    masks = model.decode(x)
    assert masks.shape == (3, 32, 32, 32)
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1
    assert model.training  # embed/decode restore the mode


def test_cpu_inference_layout_gives_the_default_layouts_vectors_and_hash() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY).eval()
    x = _boxes(5, 2)
    digest = model.weights_hash
    with torch.inference_mode():  # the default (contiguous) layout, by hand
        features = model.forward_features(normalize_boxes(x.unsqueeze(1)))
        reference = model.forward_embedding(features) * model.head_scale
        decoded = torch.sigmoid(model.forward_decoder(features))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous()
    vectors = model.embed(x)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)  # the fast layout
    torch.testing.assert_close(vectors, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.decode(x), decoded, rtol=1e-5, atol=1e-6)
    assert model.weights_hash == digest  # the identity of stored vectors does not change
    model.to(memory_format=torch.contiguous_format)  # .to() resets it; embed sets it again
    assert conv.weight.is_contiguous() and not model._channels_last
    torch.testing.assert_close(model.embed(x), reference, rtol=1e-5, atol=1e-6)
    assert model._channels_last


def test_no_decoder_no_duse_switches() -> None:
    model = CosNet(CosNetConfig(widths=(4, 8, 8), use_decoder=False, use_duse=False))
    out = model(_boxes(2), _boxes(2, 1))
    assert out["mask_support"] is None and out["mask_target"] is None
    assert not any(isinstance(m, DuSE) for m in model.modules())
    with pytest.raises(InputError):
        model.decode(_boxes(1))


def test_wrong_shape_is_input_error() -> None:
    with pytest.raises(InputError, match="expected boxes"):
        CosNet(TINY).embed(torch.zeros(2, 16, 16, 16))


def test_each_duse_has_its_own_parameters() -> None:
    model = CosNet(TINY)
    blocks = [m for m in model.modules() if isinstance(m, DuSE)]
    assert len(blocks) == 6  # 3 encoder + 3 decoder levels
    ids = [id(p) for b in blocks for p in b.parameters()]
    assert len(ids) == len(set(ids))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len({id(m) for m in norms}) == len(norms) == 6 + 3


def test_normalize_boxes_per_box() -> None:
    x = _boxes(2) * torch.tensor([3.0, 0.1]).view(2, 1, 1, 1) + 5
    y = normalize_boxes(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.std(dim=(1, 2, 3), unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.equal(normalize_boxes(torch.ones(1, 4, 4, 4)), torch.zeros(1, 4, 4, 4))


def test_embed_is_invariant_to_affine_intensity() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY)
    x = _boxes(2)
    assert torch.allclose(model.embed(x), model.embed(3 * x + 7), atol=1e-4)


def test_head_weights_stay_nonpositive_after_steps() -> None:
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), use_decoder=False))
    opt = torch.optim.SGD([model.head_v, model.head_b], lr=100.0)
    s, t = _boxes(4), _boxes(4, 1)
    for _ in range(5):
        out = model(s, t)
        # push the head towards "match" on different boxes: wants w > 0, must not get it
        loss = -out["logit"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert bool((model.head_w <= 0).all())
    assert bool((model.head_scale >= 0).all())


def test_l1_identity_matches_head() -> None:
    torch.manual_seed(0)
    model = CosNet(TINY).eval()
    with torch.no_grad():
        model.head_v.normal_()  # a non-uniform scale
        model.head_b.fill_(1.5)
    a, b = _boxes(5), _boxes(5, 1)
    l1 = (model.embed(a) - model.embed(b)).abs().sum(dim=1)
    with torch.no_grad():
        p_head = model(a, b)["p"]
    torch.testing.assert_close(model.match_probability(l1), p_head, atol=1e-5, rtol=0)
    assert model.head_bias == pytest.approx(1.5)
    assert model.head_scale.shape == (512,)


def test_config_round_trip() -> None:
    config = CosNetConfig(widths=(4, 8, 8), use_duse=False, duse_combine="add")
    assert CosNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="strides"):  # a project error (still a ValueError)
        CosNetConfig(strides=(3, 1, 1))
