"""Batched simulation of subtomograms: pose, crowding, CTF, missing wedge, noise, masks."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cosnet_index.errors import InputError
from cosnet_index.simulate._pose import pose_maps, random_rotations
from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.microscope import Imaging, ImagingRanges, resolve_imaging
from cosnet_index.simulate.molecules import class_info
from cosnet_index.simulate.reconstruction._fourier_form import image_fourier
from cosnet_index.simulate.reconstruction.paper import apply_ctf_wedge
from cosnet_index.simulate.specimen import add_neighbours, draw_neighbours, neighbour_offsets

__all__ = [
    "SubtomogramBatch",
    "SubtomogramTensors",
    "as_generator",
    "simulate_subtomograms",
    "simulate_subtomograms_torch",
]


CPU_CHUNK = 32  # subtomograms per pose / FFT chunk on CPU (cache-sized; fixes the bytes per seed)


@dataclass
class SubtomogramBatch:
    """Simulated subtomograms (numpy), one per requested class name.

    Attributes:
        volumes: (n, box, box, box) float32, (z, y, x); molecules DARK (negative contrast).
        masks: (n, box, box, box) bool; the centre molecule's voxels (posed noise-free density
            above its class threshold).
        rotations: (n, 3, 3) rotation of each molecule (acts on x, y, z; reference -> box).
        shifts: (n, 3) x, y, z shift in voxels of the molecule centre from voxel ``box // 2``.
        names: the class names, in order.
        snr: (n,) requested SNR (``inf`` = no noise).
        defocus_um: (n,) defocus used for each CTF.
        clean: (n, box, box, box) float32 noise-free imaged volumes, if asked for.
        imaging: the :class:`Imaging` drawn for each subtomogram (empty for the ``paper`` preset).
    """

    volumes: np.ndarray
    masks: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    names: tuple[str, ...] = ()
    snr: np.ndarray | None = None
    defocus_um: np.ndarray | None = None
    clean: np.ndarray | None = None
    imaging: tuple[Imaging, ...] = ()


@dataclass
class SubtomogramTensors:
    """The same content as :class:`SubtomogramBatch`, as torch tensors on one device."""

    volumes: torch.Tensor
    masks: torch.Tensor
    rotations: torch.Tensor
    shifts: torch.Tensor
    names: tuple[str, ...]
    snr: torch.Tensor
    defocus_um: torch.Tensor
    clean: torch.Tensor | None = None
    imaging: tuple[Imaging, ...] = ()

    def numpy(self) -> SubtomogramBatch:
        """Copy to a numpy :class:`SubtomogramBatch`."""
        return SubtomogramBatch(
            volumes=self.volumes.cpu().numpy(),
            masks=self.masks.cpu().numpy(),
            rotations=self.rotations.cpu().numpy(),
            shifts=self.shifts.cpu().numpy(),
            names=self.names,
            snr=self.snr.cpu().numpy(),
            defocus_um=self.defocus_um.cpu().numpy(),
            clean=None if self.clean is None else self.clean.cpu().numpy(),
            imaging=self.imaging,
        )


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """A numpy generator from a seed (or the generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


@functools.lru_cache(maxsize=8192)
def _device_map(name: str, voxel_size_nm: float, resolution_nm: float, device: str) -> torch.Tensor:
    """A class map as a tensor on ``device`` (cached)."""
    return torch.tensor(class_info(name, voxel_size_nm, resolution_nm).density, device=device)


def _stacked_maps(names: Sequence[str], config: SimulationConfig, device: str) -> torch.Tensor:
    """(n, m, m, m) maps of the given classes, zero-padded (centres kept) to the largest size."""
    maps = [_device_map(n, config.voxel_size_nm, config.resolution_nm, device) for n in names]
    size = max(m.shape[0] for m in maps)
    size += 1 - size % 2  # odd: every (odd) map pads symmetrically
    out = torch.zeros((len(maps), size, size, size), dtype=torch.float32, device=device)
    for k, m in enumerate(maps):
        lo = (size - m.shape[0]) // 2
        out[k, lo : lo + m.shape[0], lo : lo + m.shape[0], lo : lo + m.shape[0]] = m
    return out


def _snr_array(snr: float | Sequence[float], n: int) -> np.ndarray:
    values = (
        np.broadcast_to(np.asarray(snr, dtype=np.float64), (n,))
        if np.ndim(snr) == 0
        else np.asarray(snr, dtype=np.float64)
    )
    if values.shape != (n,):
        raise InputError(
            f"snr must be one number or one per name ({n}), got {values.shape[0]} values"
        )
    if np.isnan(values).any() or (values <= 0).any():
        raise InputError("every snr must be > 0 (use inf for no noise)")
    return np.array(values)


def simulate_subtomograms_torch(
    names: Sequence[str],
    snr: float | Sequence[float],
    seed: int | np.random.Generator,
    config: SimulationConfig | None = None,
    crowding: bool = False,
    device: str | torch.device = "cpu",
    return_clean: bool = False,
    imaging: str | ImagingRanges = "paper",
    collections: Sequence[int] | None = None,
) -> SubtomogramTensors:
    """Like :func:`simulate_subtomograms`, returning tensors on ``device`` (e.g. ``"cuda"``).

    The random draws (poses, defocus, crowding, the noise seed, then one :class:`Imaging` per
    subtomogram, or per collection, unless the preset is ``paper``) come from ``seed`` in a fixed
    order, so the same seed gives the same noise-free part whatever the SNR.
    """
    config = config or SimulationConfig()
    ranges = resolve_imaging(imaging)
    names = tuple(names)
    n = len(names)
    if n == 0:
        raise InputError("names is empty: give at least one class name")
    device = str(torch.device(device))
    snr_values = _snr_array(snr, n)
    rng = as_generator(seed)
    box = config.box
    rotations = random_rotations(rng, n)
    shifts = rng.uniform(-1.0, 1.0, (n, 3)) * config.max_shift_fraction * box
    defocus = config.defocus_um + rng.uniform(-1.0, 1.0, n) * config.defocus_spread_um
    unique = sorted(set(names))
    index = {name: i for i, name in enumerate(unique)}
    class_idx = np.array([index[name] for name in names])
    neighbours = draw_neighbours(rng, n, config) if crowding else None
    noise_seed = int(rng.integers(0, 2**63 - 1))
    imagings: tuple[Imaging, ...] = ()
    if not ranges.fast_path:
        imagings = _draw_imagings(ranges, rng, n, collections)
        defocus = np.array([im.defocus_um for im in imagings])
        # maps at the finest resolution the preset draws; each box is low-passed further
        finest = max(ranges.finest_resolution_nm(), 2.0 * config.voxel_size_nm)
        config = dataclasses.replace(config, resolution_nm=finest)

    infos = [class_info(u, config.voxel_size_nm, config.resolution_nm) for u in unique]
    rot_t = torch.as_tensor(rotations, dtype=torch.float32, device=device)
    if imagings:
        # a data voxel ``mismatch`` x the nominal one shows the molecule (and its mask) 1 / mismatch
        # as big: posing with ``mismatch * R`` samples the map at ``mismatch * R^T (p - c - s)``
        mismatch = [im.voxel_mismatch for im in imagings]
        rot_t = rot_t * torch.tensor(mismatch, dtype=torch.float32, device=device).view(-1, 1, 1)
    shift_t = torch.as_tensor(shifts, dtype=torch.float32, device=device)
    chunk = CPU_CHUNK if device == "cpu" else n
    with torch.no_grad():
        posed = torch.empty((n, box, box, box), dtype=torch.float32, device=device)
        for start in range(0, n, chunk):  # small chunks stay in cache on CPU
            part = slice(start, start + chunk)
            maps = _stacked_maps(names[part], config, device)  # (c, m, m, m)
            posed[part] = pose_maps(maps, rot_t[part], shift_t[part], box)
            del maps
        thresholds = torch.tensor([infos[i].threshold for i in class_idx], device=device)
        masks = posed > thresholds.view(-1, 1, 1, 1)
        signal = posed
        if neighbours is not None and neighbours.owner.size:
            radii = np.array([info.radius_voxels for info in infos])[class_idx]
            offsets = neighbour_offsets(neighbours, radii, shifts)
            signal = add_neighbours(posed, neighbours.owner, neighbours.source, offsets)
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed)
        snr_t = torch.as_tensor(snr_values, device=device)
        defocus_t = torch.as_tensor(defocus, dtype=torch.float32, device=device)
        noisy = torch.empty_like(signal)
        clean = torch.empty_like(signal) if return_clean else None
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            if imagings:
                noisy_part, clean_part = image_fourier(
                    signal[part],
                    list(imagings[part]),
                    snr_values[part],
                    generator,
                    config.voxel_size_nm,
                    config.resolution_nm,
                    return_clean,
                    rescale=False,
                )
            else:
                noisy_part, clean_part = apply_ctf_wedge(
                    signal[part], snr_t[part], config, defocus_t[part], generator, return_clean
                )
            noisy[part] = noisy_part
            if clean is not None:
                clean[part] = clean_part
    return SubtomogramTensors(
        volumes=noisy,
        masks=masks,
        rotations=torch.as_tensor(rotations, device=device),
        shifts=torch.as_tensor(shifts, device=device),
        names=names,
        snr=snr_t,
        defocus_um=torch.as_tensor(defocus, device=device),
        clean=clean if return_clean else None,
        imaging=imagings,
    )


def _draw_imagings(
    ranges: ImagingRanges, rng: np.random.Generator, n: int, collections: Sequence[int] | None
) -> tuple[Imaging, ...]:
    """One :class:`Imaging` per box, or one microscope per collection id (in order of first
    appearance) with per-particle variation (:meth:`ImagingRanges.sample_collection`)."""
    if collections is None:
        return tuple(ranges.sample(rng) for _ in range(n))
    ids = np.asarray(collections)
    if ids.shape != (n,):
        raise InputError(f"collections must give one id per name ({n}), got shape {ids.shape}")
    out: list[Imaging | None] = [None] * n
    for cid in dict.fromkeys(ids.tolist()):  # first-appearance order: reproducible
        members = np.flatnonzero(ids == cid)
        for k, im in zip(members, ranges.sample_collection(rng, len(members)), strict=True):
            out[int(k)] = im
    return tuple(im for im in out if im is not None)


def simulate_subtomograms(
    names: Sequence[str],
    snr: float | Sequence[float],
    seed: int | np.random.Generator,
    config: SimulationConfig | None = None,
    crowding: bool = False,
    device: str = "cpu",
    return_clean: bool = False,
    imaging: str | ImagingRanges = "paper",
    collections: Sequence[int] | None = None,
) -> SubtomogramBatch:
    """Simulate one subtomogram per entry of ``names`` (numpy output).

    Each molecule gets a uniform random rotation and a random shift, then the (optionally
    crowded) density is imaged with the CTF, the missing wedge and Gaussian noise at ``snr``
    (var(signal) / var(noise) inside the box after CTF and wedge). Molecules come out dark.

    Args:
        names: class names (real stems or ``proc-<id>``), repeats allowed.
        snr: one SNR for all or one per name; ``float("inf")`` = no noise.
        seed: int or numpy Generator; the same seed gives identical bytes.
        config: simulation parameters (default :class:`SimulationConfig()`).
        crowding: add 0..``config.crowding_max_neighbours`` neighbour molecules around each box.
        device: torch device to compute on.
        return_clean: also return the noise-free imaged volumes.
        imaging: an imaging preset name (``paper``, ``realistic``, ``shifted``; see
            :data:`~cosnet_index.simulate.microscope.IMAGING_PRESETS`) or an :class:`ImagingRanges`.
            ``paper`` is the fast Fourier-space path (CTF and wedge of ``config``); any other
            draws one :class:`Imaging` per subtomogram and images through the Fourier form of
            the tilt-series path (:func:`~cosnet_index.simulate.reconstruction.image_subtomograms`).
        collections: one id per name: boxes with the same id come from ONE collection and share
            its microscope (per-particle defocus and position vary,
            :meth:`~cosnet_index.simulate.microscope.ImagingRanges.sample_collection`); ``None``
            draws a microscope per box. Ignored by ``paper`` (one fixed recipe).

    Raises:
        InputError: unknown class name or preset, empty ``names``, bad snr or seed.
    """
    out = simulate_subtomograms_torch(
        names, snr, seed, config, crowding, device, return_clean, imaging, collections
    )
    return out.numpy()
