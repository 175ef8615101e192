"""Tomograms as memory-mapped, validated MRC volumes."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np

from cosnet_index.errors import MrcError

__all__ = ["Tomogram", "TomogramInfo", "check_finite", "open_tomogram", "tomogram_name"]

logger = logging.getLogger(__name__)

# MRC modes that hold real voxel values: int8, int16, float32, uint16, float16
_REAL_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_WARP_APX = re.compile(r"_\d+(\.\d+)?Apx$")
_WARP_SUFFIXES = (".tomostar", ".mrc", ".mrcs", ".rec", ".st", ".map", ".tif", ".tiff")


def tomogram_name(path_or_name: str | os.PathLike[str]) -> str:
    """The name a tomogram is known by: the file stem, without folders or known suffixes.

    ``/data/TS_01.mrc`` -> ``TS_01``; ``TS_01.tomostar`` -> ``TS_01`` (Warp);
    ``tomograms/TS_01/TS_01_aligned.st:mrc`` -> ``TS_01_aligned``; Warp's reconstruction
    ``TS_01_10.00Apx.mrc`` -> ``TS_01`` (the name its STAR files use).
    """
    text = str(path_or_name).strip()
    if text.endswith(":mrc"):
        text = text[: -len(":mrc")]
    name = text.replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    for suffix in _WARP_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _WARP_APX.sub("", name) or name


@dataclass(frozen=True)
class TomogramInfo:
    """What is known of a tomogram once validated, without keeping it open."""

    path: Path
    name: str
    shape_zyx: tuple[int, int, int]
    voxel_size_angstrom: float
    header_sha256: str

    def open(self) -> Tomogram:
        """Open it again (same voxel size).

        Raises:
            MrcError: the file changed since it was validated (another header).
        """
        tomogram = open_tomogram(self.path, voxel_size_angstrom=self.voxel_size_angstrom)
        if tomogram.header_sha256 != self.header_sha256:
            tomogram.close()
            raise MrcError(f"{self.path} changed while it was being indexed; run the command again")
        tomogram.name = self.name  # the path is resolved: keep the name it was given under
        return tomogram


@dataclass
class Tomogram:
    """An open, validated, memory-mapped tomogram. Close it (or use it as a context manager).

    Attributes:
        path: absolute path of the MRC file.
        name: the name coordinate tables use for it (:func:`tomogram_name`).
        data: ``(z, y, x)`` read-only memory map; never loaded whole.
        voxel_size_angstrom: from the header, or the override given to :func:`open_tomogram`.
        header_sha256: checksum of the main + extended header (identifies the file cheaply).
    """

    path: Path
    name: str
    data: np.ndarray
    voxel_size_angstrom: float
    header_sha256: str
    _mrc: object = field(repr=False, default=None)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """``(nz, ny, nx)`` in voxels."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def info(self) -> TomogramInfo:
        """Path, name, shape, voxel size and header checksum (to reopen it later)."""
        return TomogramInfo(
            self.path, self.name, self.shape_zyx, self.voxel_size_angstrom, self.header_sha256
        )

    def close(self) -> None:
        """Release the memory map."""
        if self._mrc is not None:
            self._mrc.close()  # type: ignore[attr-defined]
            self._mrc = None

    def __enter__(self) -> Tomogram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header_sha256(path: Path, n_bytes: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(n_bytes)).hexdigest()


def open_tomogram(
    path: str | os.PathLike[str], *, voxel_size_angstrom: float | None = None
) -> Tomogram:
    """Open an MRC tomogram memory-mapped and check that it can be indexed.

    Args:
        path: the MRC file.
        voxel_size_angstrom: use this voxel size instead of the header's (``--voxel-size``).

    Returns:
        An open :class:`Tomogram`; close it when done.

    Raises:
        MrcError: missing or unreadable file, corrupt or truncated data, a mode that is not a real
            number type, a 2D image or an empty volume, a missing or zero voxel size (and no
            override).
    """
    given = Path(path).expanduser()
    name = tomogram_name(given)  # the given file's stem, never a symlink target's
    path = given.resolve()
    if not path.is_file():
        raise MrcError(f"tomogram {path} does not exist: check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "error"
            )  # mrcfile warns on inconsistent headers: treat as corrupt
            mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, RuntimeWarning, UserWarning, EOFError) as exc:
        raise MrcError(
            f"{path} is not a valid MRC file ({exc}); check that it is complete and uncorrupted"
        ) from None
    try:
        mode = int(mrc.header.mode)
        if mode not in _REAL_MODES:
            raise MrcError(
                f"{path} has MRC mode {mode}, not a real-valued volume; convert it to float32 "
                "(mode 2), e.g. with `newstack -mode 2` or mrcfile"
            )
        data = mrc.data
        if data is None or data.size == 0:
            raise MrcError(f"{path} holds no voxels; give a non-empty tomogram")
        if data.ndim != 3 or min(data.shape) < 2 or bool(mrc.is_image_stack()):
            raise MrcError(
                f"{path} is a 2D image or image stack of shape {data.shape}, not a 3D volume; "
                "give a reconstructed tomogram"
            )
        header_voxel = float(mrc.voxel_size.x)
        if voxel_size_angstrom is not None:
            if not np.isfinite(voxel_size_angstrom) or voxel_size_angstrom <= 0:
                raise MrcError(
                    f"--voxel-size must be a positive number of angstrom, got {voxel_size_angstrom}"
                )
            voxel = float(voxel_size_angstrom)
        else:
            if not np.isfinite(header_voxel) or header_voxel <= 0:
                raise MrcError(
                    f"{path} has no voxel size in its header (got {header_voxel}); "
                    "give it with --voxel-size ANGSTROM"
                )
            voxel = header_voxel
        n_header = 1024 + int(mrc.header.nsymbt)
        checksum = _header_sha256(path, n_header)
    except BaseException:
        mrc.close()
        raise
    return Tomogram(
        path=path,
        name=name,
        data=data,
        voxel_size_angstrom=voxel,
        header_sha256=checksum,
        _mrc=mrc,
    )


def check_finite(tomogram: Tomogram, slab: int = 16) -> None:
    """Scan the volume slab by slab (memory stays flat) for NaN or infinite voxels.

    Raises:
        MrcError: the first slab with a non-finite voxel.
    """
    data = tomogram.data
    if data.dtype.kind in "iu":
        return
    for z0 in range(0, data.shape[0], slab):
        if not np.isfinite(data[z0 : z0 + slab]).all():
            raise MrcError(
                f"{tomogram.path} has NaN or infinite voxels (first in z slices {z0}-"
                f"{min(z0 + slab, data.shape[0]) - 1}); fix or replace the tomogram"
            )
