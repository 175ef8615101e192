"""Classes from a reference map or atomic model (cosnet_index/classes/_reference.py)."""

from __future__ import annotations

import dataclasses
import json

import mrcfile
import numpy as np
import pytest
from click.testing import CliRunner

from cosnet_index.classes import ReferenceImaging, add_class, list_classes
from cosnet_index.classes._reference import image_reference, reference_map, reference_vector
from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError, MrcError
from tests._classes_util import _shape


def _write_map(path, shape: str = "ring", voxel: float | None = 10.0):  # type: ignore[no-untyped-def]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.pad(_shape(shape, 24), 4))  # molecule positive, as EMDB maps
        if voxel is not None:
            mrc.voxel_size = voxel
    return path


def test_map_voxel_size_override_equals_the_header(tmp_path) -> None:
    with_header = reference_map(map_path=_write_map(tmp_path / "a.mrc", voxel=20.0))
    bare = _write_map(tmp_path / "b.mrc", voxel=None)
    with pytest.raises(MrcError, match="--map-voxel-size"):
        reference_map(map_path=bare)
    given = reference_map(map_path=bare, map_voxel_size_angstrom=20.0)
    np.testing.assert_array_equal(with_header.density, given.density)
    # 24 voxels of 20 A resampled to 1 nm: about twice as wide as at 10 A
    at_10 = reference_map(map_path=_write_map(tmp_path / "c.mrc", voxel=10.0))
    assert with_header.radius_voxels > 1.6 * at_10.radius_voxels
    with pytest.raises(InputError, match="exactly one reference"):
        reference_map()


def test_imaged_reference_is_dark_seeded_and_wedged(tmp_path) -> None:
    info = reference_map(map_path=_write_map(tmp_path / "ring.mrc", "ball"))
    imaging = ReferenceImaging(orientations=3)
    boxes = image_reference(info, imaging)
    assert boxes.shape == (3, 32, 32, 32) and boxes.dtype == np.float32
    centre = boxes[:, 13:19, 13:19, 13:19].mean()
    assert centre < boxes.mean() - 0.5 * boxes.std()  # the molecule is dark
    np.testing.assert_array_equal(boxes, image_reference(info, imaging))
    other = image_reference(info, dataclasses.replace(imaging, seed=1))
    assert not np.allclose(boxes, other)
    # nothing inside the missing wedge: Fourier amplitude along z (beyond 60 degrees tilt) ~ 0
    spectrum = np.abs(np.fft.fftn(boxes[0]))
    assert spectrum[5:12, 0, 0].max() < 1e-3 * spectrum.max()
    with pytest.raises(InputError, match="--tilt-range"):
        ReferenceImaging(tilt_min_deg=10.0)


def test_a_phase_flipped_reference_has_the_sign_of_phase_flipped_data(tmp_path) -> None:
    # far from focus and at high resolution the CTF changes sign inside Nyquist: phase-flipped
    # data (and their reference) keep the low-frequency sign at every frequency
    info = reference_map(map_path=_write_map(tmp_path / "ball.mrc", "ball"), resolution_nm=2.0)
    imaging = ReferenceImaging(defocus_um=-8.0, resolution_nm=2.0, orientations=1)
    plain = np.fft.fftn(image_reference(info, imaging)[0])
    flipped = np.fft.fftn(image_reference(info, dataclasses.replace(imaging, phase_flip=True))[0])
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*[np.fft.fftfreq(32)] * 3, indexing="ij")))
    ratio = (flipped * np.conj(plain)).real  # > 0 where both have one sign
    assert ratio[(k > 0.05) & (k < 0.15)].sum() > 0  # before the CTF's first zero: the same
    assert ratio[(k > 0.28) & (k < 0.38)].sum() < 0  # after it: the flipped one is turned over


def test_classes_add_map_through_the_cli_records_where_it_came_from(toy_store, tmp_path) -> None:
    path = _write_map(tmp_path / "ring.mrc")
    store = str(toy_store.path)
    base = ["classes", "add", "--store", store, "ring", "--map", str(path)]
    result = CliRunner().invoke(cli, [*base, "--orientations", "4", "--defocus", "-3"])
    assert result.exit_code == 0, result.output
    (made,) = list_classes(toy_store)
    assert made.shots == 1
    assert made.sources[0].startswith(f"map {path.resolve()} (4 orientations averaged")
    assert "defocus -3.0 um" in made.sources[0]
    imaging = ReferenceImaging(orientations=4, defocus_um=-3.0)
    expected = reference_vector(
        toy_store.model(), image_reference(reference_map(map_path=path), imaging)
    )
    np.testing.assert_allclose(made.vectors, expected, rtol=1e-5, atol=1e-6)
    # provenance is kept whole as JSON in the catalog
    with toy_store.session() as session:  # test-only peek at the row
        from sqlalchemy import select

        from cosnet_index.store.tables import SupportVectorRecord

        row = session.scalars(select(SupportVectorRecord)).one()
        provenance = json.loads(row.source_path)
    assert provenance["imaging"]["orientations"] == 4 and provenance["imaging"]["snr"] == "inf"
    assert provenance["kind"] == "map" and provenance["model_voxel_size_angstrom"] == 10.0
    result = CliRunner().invoke(
        cli, [*base[:-3], "ring2", "--map", str(path), "--model", str(path)]
    )
    assert result.exit_code == 1 and "exactly one reference" in result.output


def test_classes_from_an_atomic_model(toy_store, tmp_path) -> None:
    pytest.importorskip("gemmi")
    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 1, (400, 3))
    xyz = 40.0 * xyz / np.linalg.norm(xyz, axis=1, keepdims=True)  # a hollow 8 nm shell of carbon
    lines = [
        f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        for i, (x, y, z) in enumerate(xyz)
    ]
    pdb = tmp_path / "shell.pdb"
    pdb.write_text("\n".join([*lines, "END", ""]))
    made = add_class(
        toy_store, "shell", reference_model=pdb, reference_imaging=ReferenceImaging(orientations=2)
    )
    assert made.shots == 1 and made.sources[0].startswith("atomic-model ")
    with pytest.raises(InputError, match="--map only"):
        add_class(toy_store, "shell2", reference_model=pdb, map_voxel_size_angstrom=2.0)


def test_a_map_class_finds_particles_imaged_the_same_way() -> None:
    # the shipped model: a class from each map, against particles of both shapes imaged like
    # the collection (other orientations, noise at SNR 1): each class is nearest its own shape
    from cosnet_index.model import load_default_model
    from cosnet_index.query import l1_distances
    from cosnet_index.simulate.molecules._density import finish_map

    model, _ = load_default_model()
    shapes = ("ball", "ring")
    maps = [finish_map(s, np.pad(_shape(s, 24), 4), 1.0, 2.0, 1e5) for s in shapes]
    imaging = ReferenceImaging(orientations=4)
    protos = np.concatenate([reference_vector(model, image_reference(m, imaging)) for m in maps])
    for k, info in enumerate(maps):
        particles = image_reference(info, dataclasses.replace(imaging, seed=10 + k, snr=1.0))
        xb = np.concatenate([reference_vector(model, p[None]) for p in particles])
        assert (l1_distances(xb, protos).argmin(axis=1) == k).all(), shapes[k]
