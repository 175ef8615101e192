"""COS-Net: Siamese 3D encoder + DuSE + mask decoder + L1 match head (Zhou et al. 2021)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosnet_index.model.config import CosNetConfig
from cosnet_index.model.duse import DuSE
from cosnet_index.model.identity import compute_hash
from cosnet_index.model.normalize import as_box_batch, normalize_boxes
from cosnet_index.threads import timed_batch

__all__ = ["CosNet"]

LayerFactory = Callable[..., nn.Module]


def _norm3d(channels: int) -> nn.Module:
    return nn.BatchNorm3d(channels)


class _Level(nn.Sequential):
    """conv (+ norm + act) x k, then a DuSE block with its own weights (or identity)."""

    def __init__(self, layers: list[nn.Module], channels: int, config: CosNetConfig, act_layer):
        if config.use_duse:
            duse: nn.Module = DuSE(
                channels, config.duse_reduction, config.duse_combine, act_layer=act_layer
            )
        else:
            duse = nn.Identity()
        super().__init__(*layers, duse)


class CosNet(nn.Module):
    """The COS-Net model.

    ``embed`` gives storage vectors ``|w| * f`` so that the head equals
    ``sigmoid(b - L1(embed(s), embed(t)))`` (see :meth:`match_probability`).

    Args:
        config: the architecture.
        norm_layer: factory ``norm_layer(channels) -> nn.Module``; called once
            per norm layer (every norm a fresh module).
        act_layer: activation class, instantiated once per use.
    """

    def __init__(
        self,
        config: CosNetConfig | None = None,
        norm_layer: LayerFactory = _norm3d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.config = config = config or CosNetConfig()
        self._channels_last = False  # weights in channels_last_3d for CPU inference (embed)
        widths, strides = config.widths, config.strides

        levels = []
        cin = 1
        for width, stride in zip(widths, strides, strict=True):
            layers: list[nn.Module] = []
            for k in range(config.convs_per_level):
                s = stride if k == 0 else 1
                layers += [
                    nn.Conv3d(cin, width, 3, stride=s, padding=1, bias=False),
                    norm_layer(width),
                    act_layer(),
                ]
                cin = width
            levels.append(_Level(layers, width, config, act_layer))
        self.encoder = nn.ModuleList(levels)

        self.decoder: nn.ModuleList | None = None
        self.mask_head: nn.Module | None = None
        if config.use_decoder:
            dec = []
            # mirror the encoder: w3 -> w2 -> w1 -> w1/2; with mask_upsample=2 the last
            # upsampling is done by trilinear interpolation of the mask logits (the 32^3 level
            # dominated the training cost; masks of 4 nm-resolution data are smooth)
            outs = [widths[1], widths[0], max(1, widths[0] // 2)]
            ups = list(reversed(strides))
            if config.mask_upsample == 2:
                ups[len(ups) - 1 - ups[::-1].index(2)] = 1
            cin = widths[2]
            for width, stride in zip(outs, ups, strict=True):
                if stride == 2:
                    up: nn.Module = nn.ConvTranspose3d(cin, width, 2, stride=2, bias=False)
                else:
                    up = nn.Conv3d(cin, width, 3, padding=1, bias=False)
                dec.append(_Level([up, norm_layer(width), act_layer()], width, config, act_layer))
                cin = width
            self.decoder = nn.ModuleList(dec)
            self.mask_head = nn.Conv3d(cin, 1, 1)

        pool = config.feature_pool or config.bottleneck_side
        self.feature_pool = pool
        flat = widths[2] * pool**3
        # the paper's 512x512 feature encoder: Linear(flat -> 512) then Linear(512 -> 512)
        self.fc1 = nn.Linear(flat, config.embed_dim)
        self.fc2 = nn.Linear(config.embed_dim, config.embed_dim)
        # head p = sigmoid(b + w . |fs - ft|), w = -softplus(v) <= 0
        init_w = 1.0 / math.sqrt(config.embed_dim)
        self.head_v = nn.Parameter(torch.full((config.embed_dim,), math.log(math.expm1(init_w))))
        self.head_b = nn.Parameter(torch.tensor(2.0))

    # -- pieces ---------------------------------------------------------------------------------

    def forward_features(self, x: Tensor) -> Tensor:
        """Encoder (+ DuSE per level): ``(n, 1, B, B, B)`` normalised boxes -> bottleneck."""
        for level in self.encoder:
            x = level(x)
        return x  # (n, w3, side, side, side)

    def forward_embedding(self, features: Tensor) -> Tensor:
        """Feature encoder: bottleneck -> unscaled ``(n, embed_dim)`` embedding ``f``."""
        if features.shape[-1] != self.feature_pool:
            features = F.adaptive_avg_pool3d(features, self.feature_pool)
        return self.fc2(self.fc1(features.flatten(1)))

    def forward_decoder(self, features: Tensor) -> Tensor | None:
        """Decoder: bottleneck -> ``(n, B, B, B)`` mask logits (None without decoder)."""
        if self.decoder is None or self.mask_head is None:
            return None
        x = features
        for level in self.decoder:
            x = level(x)
        logits = self.mask_head(x)
        if logits.shape[-1] != self.config.box:
            logits = F.interpolate(
                logits, size=(self.config.box,) * 3, mode="trilinear", align_corners=False
            )
        return logits[:, 0]

    def forward_head(self, f_support: Tensor, f_target: Tensor) -> Tensor:
        """Match logit ``b + w . |fs - ft|`` for unscaled embeddings, shape ``(n,)``."""
        return self.head_b + (self.head_w * (f_support - f_target).abs()).sum(dim=-1)

    def forward(self, support: Tensor, target: Tensor) -> dict[str, Tensor | None]:
        """Score ``n`` (support, target) pairs of raw boxes.

        Returns:
            ``logit`` and ``p`` ``(n,)``; ``mask_support``/``mask_target`` ``(n, B, B, B)``
            probabilities, and ``mask_*_logit``; masks are None without decoder.
        """
        n = support.shape[0]
        x = torch.cat([self._prepare(support), self._prepare(target)])
        features = self.forward_features(x)
        f = self.forward_embedding(features)
        logit = self.forward_head(f[:n], f[n:])
        out: dict[str, Tensor | None] = {"logit": logit, "p": torch.sigmoid(logit)}
        mask_logit = self.forward_decoder(features)
        for name, part in (("support", slice(0, n)), ("target", slice(n, None))):
            if mask_logit is None:
                out[f"mask_{name}_logit"] = out[f"mask_{name}"] = None
            else:
                out[f"mask_{name}_logit"] = mask_logit[part]
                out[f"mask_{name}"] = torch.sigmoid(mask_logit[part])
        return out

    # -- inference API --------------------------------------------------------------------------

    @property
    def head_w(self) -> Tensor:
        """Head weights ``w = -softplus(v)``, all <= 0, shape ``(embed_dim,)``."""
        return -F.softplus(self.head_v)

    @property
    def head_scale(self) -> Tensor:
        """``|w|``, the per-dimension scale of storage vectors, shape ``(embed_dim,)``."""
        return F.softplus(self.head_v).detach()

    @property
    def head_bias(self) -> float:
        """The head's bias ``b``."""
        return float(self.head_b.detach())

    @property
    def weights_hash(self) -> str:
        """Content hash of the current weights + config (what stored vectors record)."""
        return compute_hash(self)

    def _prepare(self, volumes: Tensor) -> Tensor:
        x = as_box_batch(volumes, self.config.box)
        param = next(self.parameters())
        x = normalize_boxes(x).to(device=param.device, dtype=param.dtype)
        if param.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def _inference_layout(self) -> None:
        """On the CPU, the weights in ``channels_last_3d`` (once; the values, the state dict and
        :attr:`weights_hash` are unchanged): 2.2x the boxes/s of the default layout with the
        shipped model on 2 cores (bench/embed.py, issue 32; the same maths, so vectors equal the
        default layout's within float32 round-off)."""
        param = next(self.parameters())
        if param.device.type == "cpu" and not self._channels_last:
            self.to(memory_format=torch.channels_last_3d)
            self._channels_last = True

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to(device / dtype / layout) may change the layout: decide it again on the next call
        self._channels_last = False
        return super()._apply(fn, recurse)

    @torch.inference_mode()
    def embed(self, volumes: Tensor, batch_size: int = 64) -> Tensor:
        """Storage vectors of raw boxes.

        On the CPU the forward runs in ``channels_last_3d`` (:meth:`_inference_layout`).

        Args:
            volumes: ``(n, B, B, B)`` or ``(n, 1, B, B, B)`` raw boxes (molecules dark); each box is
                normalised here (zero mean, unit std) as in training.
            batch_size: boxes per forward pass (64: the fastest of 16-512 on 2 CPU cores,
                bench/embed.py).

        Returns:
            ``(n, embed_dim)`` float32 on the CPU, already scaled by ``|w|`` so that
            ``match_probability(L1(a, b))`` is the head's probability. Runs in eval mode.

        Raises:
            InputError: wrong shape.
        """
        was_training = self.training
        self.eval()
        self._inference_layout()
        try:
            scale = self.head_scale
            out = []
            for start in range(0, volumes.shape[0], batch_size):
                x = self._prepare(volumes[start : start + batch_size])
                with timed_batch(len(x)):  # the default thread count is measured here
                    f = self.forward_embedding(self.forward_features(x))
                    out.append((f * scale).float().cpu())
            if not out:
                return torch.zeros(0, self.config.embed_dim)
            return torch.cat(out)
        finally:
            self.train(was_training)

    @torch.inference_mode()
    def decode(self, volumes: Tensor, batch_size: int = 64) -> Tensor:
        """Decoder probability masks ``(n, B, B, B)`` of raw boxes (normalised here).

        Raises:
            InputError: wrong shape, or a model built without decoder.
        """
        from cosnet_index.errors import InputError

        if self.decoder is None:
            raise InputError("this model was built with use_decoder=False: it cannot segment")
        was_training = self.training
        self.eval()
        self._inference_layout()
        try:
            out = []
            for start in range(0, volumes.shape[0], batch_size):
                x = self._prepare(volumes[start : start + batch_size])
                with timed_batch(len(x)):
                    logits = self.forward_decoder(self.forward_features(x))
                    assert logits is not None
                    out.append(torch.sigmoid(logits).float().cpu())
            if not out:
                b = self.config.box
                return torch.zeros(0, b, b, b)
            return torch.cat(out)
        finally:
            self.train(was_training)

    def match_probability(self, l1: Tensor) -> Tensor:
        """``sigmoid(b - l1)`` for L1 distances between storage vectors (from :meth:`embed`)."""
        return torch.sigmoid(self.head_b.detach().to(l1.dtype) - l1)
