"""The real-molecule library: manifest rules, symmetric assemblies, loader (all offline)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cosnet_index.errors import InputError
from cosnet_index.simulate import library_manifest, library_map, library_names, resolve_classes
from cosnet_index.simulate.molecules._assembly import (
    CONTACT_ANGSTROM,
    assemble,
    count_clashes,
    symmetry_operators,
)
from cosnet_index.simulate.molecules._density import splat
from cosnet_index.simulate.molecules._library_build._manifest import tier_of
from cosnet_index.simulate.molecules._library_build._sources import EXCLUDED_IDS
from cosnet_index.simulate.molecules._library_build._split import heldout_id, read_reserved
from cosnet_index.simulate.molecules.library import library_class
from cosnet_index.simulate.molecules.maps import class_info, is_class_name

REPO = Path(__file__).resolve().parents[1]


def _reserved() -> frozenset[str]:
    candidates = [
        os.environ.get("COSNET_RESERVED", ""),
        REPO.parent / "shared" / "structures" / "RESERVED.txt",
        REPO.parent / "main" / ".." / "shared" / "structures" / "RESERVED.txt",
    ]
    for path in candidates:
        if path and Path(path).is_file():
            return read_reserved(path)
    pytest.skip("RESERVED.txt not found beside the repository (set COSNET_RESERVED)")


def _chain(n_atoms: int = 400, seed: int = 0) -> np.ndarray:
    """A compact, chain-like blob of heavy atoms 1.5 A apart (a random walk), in angstrom."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n_atoms, 3))
    steps *= 1.5 / np.linalg.norm(steps, axis=1, keepdims=True)
    walk = np.cumsum(steps, axis=0)
    # fold it into a globule: pull every atom toward the centre, keep 1.5 A steps locally
    return (walk - walk.mean(axis=0)) * np.array([0.5, 0.4, 0.35])


# ---------------------------------------------------------------- the shipped manifest


def test_manifest_has_100_entries_none_reserved() -> None:
    frame = library_manifest()
    ids = {i.upper() for cell in frame["pdb_id"] for i in str(cell).split(";")}
    assert len(ids) >= 100
    reserved = _reserved()
    assert not ids & reserved
    assert not ids & EXCLUDED_IDS  # the ten shipped maps keep their own roles
    for name in frame["name"]:
        for token in name.upper().replace("LIB-", "").split("-"):
            assert token not in reserved, name


def test_manifest_split_is_disjoint_and_tiers_hold() -> None:
    frame = library_manifest()
    assert frame["name"].is_unique
    train, heldout = frame[frame["split"] == "train"], frame[frame["split"] == "heldout"]
    assert len(train) + len(heldout) == len(frame)
    ids = {
        split: {i for cell in part["pdb_id"] for i in str(cell).split(";")}
        for split, part in (("train", train), ("heldout", heldout))
    }
    assert not ids["train"] & ids["heldout"]  # no entry feeds both splits
    small = np.sort(heldout.loc[heldout["tier"] == "small-80-200kDa", "mass_kda"].to_numpy())
    assert len(small) >= 12
    # >= 10 masses within a factor 1.5 of each other (a size-matched 10-way episode)
    best = max(int(np.searchsorted(small, 1.5 * m, side="right")) - i for i, m in enumerate(small))
    assert best >= 10
    assert (heldout["tier"] == "large-2-5MDa").sum() >= 10
    assert all(tier_of(m) == t for m, t in zip(frame["mass_kda"], frame["tier"], strict=True))


def test_heldout_rule_matches_the_manifest() -> None:
    frame = library_manifest()
    files = frame[(frame["recipe"] == "file") & (frame["source_package"] != "theseus-examples")]
    expected = ["heldout" if heldout_id(i) else "train" for i in files["pdb_id"]]
    assert list(files["split"]) == expected
    assert heldout_id("1ABC") == heldout_id("1abc")


def test_presets_resolve_to_the_manifest_splits() -> None:
    assert set(resolve_classes("lib-heldout-large")) == set(
        library_names("heldout", "large-2-5MDa")
    )
    small = resolve_classes("lib-heldout-small")
    assert len(small) >= 12 and all(n.startswith("lib-") for n in small)
    assert not set(resolve_classes("lib-train")) & set(resolve_classes("lib-heldout"))
    with pytest.raises(InputError):
        library_names("test")


# ---------------------------------------------------------------- the loader


def test_library_map_has_the_manifest_size() -> None:
    frame = library_manifest()
    for name, voxels in zip(frame["name"][:5], frame["map_voxels"][:5], strict=True):
        volume = library_map(name)
        assert volume.shape == (voxels, voxels, voxels)
        assert volume.dtype == np.float32 and np.isclose(volume.max(), 1.0)
    coarse = library_map(frame["name"][0], 2.0)
    assert coarse.shape[0] < frame["map_voxels"][0]
    with pytest.raises(InputError):
        library_map("lib-nothing")


def test_library_class_envelope_holds_the_mass() -> None:
    frame = library_manifest()
    row = frame[frame["tier"] == "small-80-200kDa"].iloc[0]
    info = class_info(row["name"], 1.0, 4.0)
    assert is_class_name(row["name"])
    assert info is library_class(row["name"], 1.0, 4.0)
    volume_nm3 = (info.density > info.threshold).sum() * info.voxel_size_nm**3
    assert volume_nm3 * 810.0 / 1000.0 == pytest.approx(row["mass_kda"], rel=0.03)
    # the envelope of the mass fits the molecule's size
    assert 2 * info.radius_voxels >= 0.7 * row["diameter_nm"]
    with pytest.raises(InputError):
        library_class(row["name"], 1.0, 1.0)  # finer than the stored 2 nm


def test_simulator_takes_library_names() -> None:
    from cosnet_index.simulate import SimulationConfig, simulate_subtomograms

    names = list(library_names("heldout", "small-80-200kDa")[:2])
    batch = simulate_subtomograms(names, snr=1.0, seed=0, config=SimulationConfig(box=32))
    assert batch.volumes.shape[0] == 2


# ---------------------------------------------------------------- symmetric assemblies


@pytest.mark.parametrize(("spec", "copies"), [("C4", 4), ("D3", 6), ("T", 12), ("O", 24)])
def test_assembly_copies_and_no_clashes(spec: str, copies: int) -> None:
    unit = _chain()
    asm = assemble(unit, spec, seed=1)
    assert asm.n_copies == copies
    assert asm.coords.shape == (copies * len(unit), 3)
    assert count_clashes(asm.coords, asm.copy_index) == 0
    assert CONTACT_ANGSTROM <= asm.min_distance_angstrom < CONTACT_ANGSTROM + 0.5  # in contact
    # every copy is the unit moved rigidly: same internal distances
    first = asm.coords[asm.copy_index == 0]
    last = asm.coords[asm.copy_index == copies - 1]
    np.testing.assert_allclose(
        np.linalg.norm(first[1:] - first[:-1], axis=1),
        np.linalg.norm(last[1:] - last[:-1], axis=1),
        atol=1e-9,
    )


def test_c4_map_is_invariant_under_a_quarter_turn() -> None:
    asm = assemble(_chain(), "C4", seed=2)
    assert np.allclose(asm.coords.mean(axis=0), 0.0, atol=1e-9)  # the axis goes through 0
    volume = splat(asm.coords / 10.0, np.ones(len(asm.coords)), 0.5, pad_nm=1.0)  # (z, y, x)
    turned = np.rot90(volume, k=1, axes=(1, 2))  # 90 degrees about z
    corr = np.corrcoef(volume.ravel(), turned.ravel())[0, 1]
    assert corr > 0.95
    # a C3 assembly is not invariant under a quarter turn
    c3 = assemble(_chain(), "C3", seed=2)
    v3 = splat(c3.coords / 10.0, np.ones(len(c3.coords)), 0.5, pad_nm=1.0)
    assert np.corrcoef(v3.ravel(), np.rot90(v3, 1, (1, 2)).ravel())[0, 1] < 0.9


def test_symmetry_operators_are_exact_groups() -> None:
    for spec, order in (("C5", 5), ("D4", 8), ("T", 12), ("O", 24), ("I", 60)):
        rotations, translations = symmetry_operators(spec)
        assert len(rotations) == order and np.allclose(translations, 0)
        np.testing.assert_allclose(rotations[0], np.eye(3), atol=1e-12)
        np.testing.assert_allclose(
            np.einsum("kij,klj->kil", rotations, rotations),
            np.repeat(np.eye(3)[None], order, 0),
            atol=1e-9,
        )
    with pytest.raises(InputError):
        symmetry_operators("Q7")
    with pytest.raises(InputError):
        symmetry_operators("H12")


def test_helix_and_lattice_patch() -> None:
    unit = _chain(200)
    helix = assemble(unit, "H40", seed=0)
    assert helix.n_copies == 40 and count_clashes(helix.coords, helix.copy_index) == 0
    extent = np.ptp(helix.coords, axis=0)
    assert extent[2] > 1.5 * max(extent[0], extent[1])  # longer along the helix axis
    # helical symmetry: copy k+1 is copy k turned by the twist about z and raised by the rise
    first, second = (helix.coords[helix.copy_index == k] for k in (0, 1))
    turn = np.radians(360.0 / 5.7)
    rz = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    moved = first @ rz.T
    rise = second[:, 2].mean() - moved[:, 2].mean()
    np.testing.assert_allclose(moved + np.array([0.0, 0.0, rise]), second, atol=1e-6)
    patch = assemble(unit, "P7", seed=0)
    assert patch.n_copies == 7 and count_clashes(patch.coords, patch.copy_index) == 0
    extent = np.ptp(patch.coords, axis=0)
    assert extent[2] < 0.6 * min(extent[0], extent[1])  # flat


# ---------------------------------------------------------------- atomic models (gemmi)


def test_mass_of_a_tiny_atomic_model(tmp_path: Path) -> None:
    gemmi = pytest.importorskip("gemmi")
    from cosnet_index.simulate.molecules._library_build._models import (
        chains_of,
        mass_kda,
        read_model,
    )

    structure = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    names = (("N", "N"), ("CA", "C"), ("C", "C"), ("O", "O"), ("CB", "C"))
    for i in range(40):  # poly-alanine, atoms 1.5 A apart along a spiral
        residue = gemmi.Residue()
        residue.name, residue.seqid = "ALA", gemmi.SeqId(i + 1, " ")
        for j, (atom_name, element) in enumerate(names):
            k = 5 * i + j
            atom = gemmi.Atom()
            atom.name, atom.element = atom_name, gemmi.Element(element)
            atom.pos = gemmi.Position(8 * np.cos(k / 5.0), 8 * np.sin(k / 5.0), 0.3 * k)
            atom.occ = 1.0
            residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    path = tmp_path / "tiny.pdb"
    structure.write_pdb(str(path))
    cleaned, how = read_model([path])
    chains = chains_of(cleaned)
    assert how == "file" and len(chains) == 1
    # alanine residue in a chain: C3H5NO, 71.08 Da
    assert mass_kda(chains[0][3]) == pytest.approx(40 * 71.08 / 1000.0, rel=0.02)


def test_summary_counts_the_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    from cosnet_index.simulate.molecules.library import main

    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    frame = library_manifest()
    assert out.startswith(f"{len(frame)} molecules")
    assert "| large-2-5MDa |" in out and "| theseus-examples |" in out
