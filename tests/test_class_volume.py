"""A class's molecular volume: from a map (given or estimated contour), a mass, an atomic model;
`classes set-volume`; `classes list`; migration 0005 on an older store (classes/_volume.py)."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from cosnet_index.classes import (
    ClassVolume,
    add_class,
    list_classes,
    set_class_volume,
    volume_of_map,
    volume_of_mass,
    volume_of_model,
)
from cosnet_index.classes._volume import estimated_contour, model_mass_kda
from cosnet_index.cli._app import cli
from cosnet_index.errors import ClassError, InputError, MrcError, SchemaError
from cosnet_index.store import Store, schema


def _ball(side: int, radius: float) -> np.ndarray:
    z, y, x = np.indices((side,) * 3) - (side - 1) / 2
    return (x**2 + y**2 + z**2 <= radius**2).astype(np.float32)


def _write_map(path, data: np.ndarray, voxel: float | None):  # type: ignore[no-untyped-def]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if voxel is not None:
            mrc.voxel_size = voxel
    return path


def _ids(store: Store) -> list[int]:
    return [int(i) for i in store.subtomogram_table()["id"][:3]]


def _only(store: Store):  # type: ignore[no-untyped-def]
    (made,) = list_classes(store)
    return made


# -- volumes ---------------------------------------------------------------------------------


def test_volume_of_a_map_at_a_given_contour_counts_its_voxels_above(tmp_path) -> None:
    data = 2.0 * _ball(40, 8.0) + 0.5 * _ball(40, 12.0)  # a core at 2.5, a shell at 0.5
    path = _write_map(tmp_path / "m.mrc", data, voxel=5.0)  # 0.125 nm^3 per voxel
    core = volume_of_map(path, contour=1.0)
    assert core.source == "map-contour" and "contour 1 given" in core.note
    assert core.volume_nm3 == pytest.approx(_ball(40, 8.0).sum() * 0.125)
    whole = volume_of_map(path, contour=0.1)
    assert whole.volume_nm3 == pytest.approx(_ball(40, 12.0).sum() * 0.125)
    # the override of a wrong header scales the volume by its cube
    assert volume_of_map(path, contour=1.0, voxel_size_angstrom=10.0).volume_nm3 == pytest.approx(
        8 * core.volume_nm3
    )
    with pytest.raises(InputError, match=r"encloses no voxel.*maximum is 2\.5"):
        volume_of_map(path, contour=3.0)
    bare = _write_map(tmp_path / "bare.mrc", data, voxel=None)
    with pytest.raises(MrcError, match="--map-voxel-size"):
        volume_of_map(bare, contour=1.0)


def test_estimated_contour_is_a_fixed_fraction_of_the_density_inside() -> None:
    volume = np.zeros((20, 20, 20), dtype=np.float32)
    volume[5:15, 5:15, 5:15] = 1.0  # a plateau of 1000 voxels
    volume[0, 0, :4] = 0.05  # faint dust, below 10% of the maximum
    assert estimated_contour(volume) == pytest.approx(0.7)
    volume[5:10] *= 2.0  # half the plateau twice as dense: the median is still 1 or 2
    assert estimated_contour(volume) in (pytest.approx(0.7), pytest.approx(1.4))


def test_estimated_volume_of_a_solid_ball_is_near_its_volume(tmp_path) -> None:
    # a uniform 5 nm ball at 2.5 A voxels: low-passed to 2 nm, the contour at 0.7 of the
    # plateau lies a little inside the edge (the 10%-of-maximum rule gives 1.4x)
    path = _write_map(tmp_path / "ball.mrc", _ball(64, 20.0), voxel=2.5)
    estimate = volume_of_map(path)
    true = 4 / 3 * np.pi * 5.0**3
    assert estimate.source == "map-contour" and "estimated" in estimate.note
    assert 0.8 < estimate.volume_nm3 / true < 1.0


def test_a_mass_sets_the_volume_at_the_protein_density(tmp_path) -> None:
    volume = volume_of_mass(81.0)
    assert volume == ClassVolume(100.0, "mass-kda", 81.0, "81 kDa")
    path = _write_map(tmp_path / "m.mrc", _ball(16, 4.0), voxel=10.0)
    with_map = volume_of_map(path, mass_kda=810.0)
    assert with_map.source == "map-mass" and with_map.volume_nm3 == pytest.approx(1000.0)
    with pytest.raises(InputError, match="not both"):
        volume_of_map(path, mass_kda=810.0, contour=0.5)
    for bad in (0.0, -3.0, float("nan"), "heavy"):
        with pytest.raises(InputError, match="positive number of kDa"):
            volume_of_mass(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="positive number of nm"):
        ClassVolume(-1.0, "user")
    with pytest.raises(InputError, match="unknown volume source"):
        ClassVolume(1.0, "guess")


def test_volume_of_an_atomic_model_is_its_atomic_masses(tmp_path) -> None:
    gemmi = pytest.importorskip("gemmi")
    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 10, (400, 3))
    line = "{kind:<6}{i:5d}  {name:<3} ALA A{i:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00{e:>12}"

    def write(path, hydrogens: bool):  # type: ignore[no-untyped-def]
        rows = [
            line.format(kind="ATOM", i=i + 1, name="CA", x=x, y=y, z=z, e="C")
            for i, (x, y, z) in enumerate(xyz)
        ]
        rows += ["HETATM 9001  O   HOH W   1       0.000   0.000   0.000  1.00  0.00           O"]
        if hydrogens:
            rows += [
                line.format(kind="ATOM", i=i + 1, name="HA", x=x + 1, y=y, z=z, e="H")
                for i, (x, y, z) in enumerate(xyz)
            ]
        path.write_text("\n".join([*rows, "END", ""]))
        return path

    carbon, hydrogen = gemmi.Element("C").weight, gemmi.Element("H").weight
    # waters dropped; one hydrogen of 1.008 Da per heavy atom when the file has none
    assert model_mass_kda(write(tmp_path / "a.pdb", False)) == pytest.approx(
        400 * (carbon + 1.008) / 1000
    )
    assert model_mass_kda(write(tmp_path / "b.pdb", True)) == pytest.approx(
        400 * (carbon + hydrogen) / 1000
    )
    volume = volume_of_model(tmp_path / "a.pdb")
    assert volume.source == "atomic-model"
    assert volume.volume_nm3 == pytest.approx(400 * (carbon + 1.008) / 1000 / 0.81)
    (tmp_path / "junk.pdb").write_text("not a model")
    with pytest.raises(InputError):
        volume_of_model(tmp_path / "junk.pdb")


# -- classes -----------------------------------------------------------------------------------


def test_classes_add_records_the_volume_and_list_shows_it(toy_store, tmp_path) -> None:
    store, (a, b, _) = str(toy_store.path), _ids(toy_store)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["classes", "add", "--store", store, "tric", "--subtomogram", str(a), "--mass-kda", "810"],
    )
    assert result.exit_code == 0, result.output
    assert "volume 1000 nm^3 (mass-kda: 810 kDa)" in result.output
    result = runner.invoke(
        cli, ["classes", "add", "--store", store, "blob", "--subtomogram", str(b)]
    )
    assert result.exit_code == 0 and "volume unknown" in result.output
    path = _write_map(tmp_path / "m.mrc", 2.0 * _ball(40, 8.0), voxel=5.0)
    result = runner.invoke(
        cli,
        ["classes", "add", "--store", store, "ball", "--map", str(path), "--contour", "1",
         "--orientations", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["classes", "list", "--store", store, "--json"])
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["tric"]["volume_nm3"] == 1000.0 and rows["tric"]["volume_source"] == "mass-kda"
    assert rows["tric"]["mass_kda"] == 810.0
    assert rows["blob"]["volume_nm3"] is None and rows["blob"]["volume"] == "unknown"
    assert rows["ball"]["volume_source"] == "map-contour"
    assert rows["ball"]["volume_nm3"] == pytest.approx(_ball(40, 8.0).sum() * 0.125, abs=0.1)
    text = runner.invoke(cli, ["classes", "list", "--store", store]).output
    assert "volume 1000 nm^3 (mass-kda" in text and "volume unknown" in text


def test_bad_volume_input_writes_nothing(toy_store, tmp_path) -> None:
    a, _, _ = _ids(toy_store)
    path = _write_map(tmp_path / "m.mrc", 2.0 * _ball(40, 8.0), voxel=5.0)
    with pytest.raises(InputError, match="encloses no voxel"):
        add_class(toy_store, "ball", reference_map=path, contour=9.0)
    with pytest.raises(InputError, match="--contour is the level of a --map"):
        add_class(toy_store, "ball", subtomogram_ids=[a], contour=1.0)
    with pytest.raises(InputError, match="positive number of kDa"):
        add_class(toy_store, "ball", subtomogram_ids=[a], mass_kda=-1.0)
    assert list_classes(toy_store) == []
    add_class(toy_store, "ball", subtomogram_ids=[a], mass_kda=81.0)
    for kwargs in ({}, {"mass_kda": 1.0, "volume_nm3": 1.0}, {"volume_nm3": 5.0, "clear": True}):
        with pytest.raises(InputError, match="exactly one of --mass-kda"):
            set_class_volume(toy_store, "ball", **kwargs)
    with pytest.raises(InputError, match="positive number"):
        set_class_volume(toy_store, "ball", volume_nm3=0.0)
    with pytest.raises(ClassError, match="no class 'nope'"):
        set_class_volume(toy_store, "nope", mass_kda=1.0)
    assert _only(toy_store).volume == volume_of_mass(81.0)  # unchanged


def test_set_volume_adds_corrects_and_clears(toy_store) -> None:
    add_class(toy_store, "blob", subtomogram_ids=_ids(toy_store)[:1])
    vectors = _only(toy_store).vectors
    runner = CliRunner()
    base = ["classes", "set-volume", "--store", str(toy_store.path), "blob"]
    result = runner.invoke(cli, [*base, "--mass-kda", "162"])
    assert result.exit_code == 0 and "volume 200 nm^3 (mass-kda" in result.output
    result = runner.invoke(cli, [*base, "--volume-nm3", "150"])
    assert result.exit_code == 0, result.output
    made = _only(toy_store)
    assert made.volume == ClassVolume(150.0, "user", None, "set by hand")
    np.testing.assert_array_equal(made.vectors, vectors)  # the vectors are untouched
    result = runner.invoke(cli, [*base, "--mass-kda", "1", "--volume-nm3", "1"])
    assert result.exit_code == 1 and "exactly one of" in result.output
    assert runner.invoke(cli, [*base, "--clear"]).exit_code == 0
    assert _only(toy_store).volume is None


def test_append_keeps_a_better_volume(toy_store, tmp_path) -> None:
    a, b, _ = _ids(toy_store)
    add_class(toy_store, "ball", subtomogram_ids=[a])
    set_class_volume(toy_store, "ball", volume_nm3=300.0)
    path = _write_map(tmp_path / "m.mrc", 2.0 * _ball(40, 8.0), voxel=5.0)
    from cosnet_index.classes import ReferenceImaging

    imaging = ReferenceImaging(orientations=2)
    made = add_class(
        toy_store, "ball", append=True, reference_map=path, contour=1.0, reference_imaging=imaging
    )
    assert made.shots == 2 and made.volume == ClassVolume(300.0, "user", None, "set by hand")
    made = add_class(toy_store, "ball", append=True, subtomogram_ids=[b], mass_kda=81.0)
    assert made.shots == 3 and made.volume == volume_of_mass(81.0)


def test_an_older_store_upgrades_in_place_and_keeps_its_classes(toy_store) -> None:
    a, b, c = _ids(toy_store)
    add_class(toy_store, "blob", subtomogram_ids=[a, b])
    add_class(toy_store, "tric", subtomogram_ids=[c], mass_kda=810.0)
    before = {c.name: c.vectors for c in list_classes(toy_store)}
    path = toy_store.path
    schema.downgrade(toy_store.engine, "0004")  # as the previous release left it
    columns = {c["name"] for c in inspect(toy_store.engine).get_columns("classes")}
    assert "volume_nm3" not in columns
    assert schema.current_revision(toy_store.engine) == "0004"
    toy_store.close()
    with pytest.raises(SchemaError, match="db upgrade"):
        Store.open(path)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--store", str(path)])
    assert result.exit_code == 0, result.output
    with Store.open(path) as store:
        classes = {c.name: c for c in list_classes(store)}
        assert set(classes) == {"blob", "tric"}
        for name, vectors in before.items():  # no support vector lost to the table copies
            np.testing.assert_array_equal(classes[name].vectors, vectors)
            assert classes[name].volume is None  # dropped by the downgrade, not invented
        set_class_volume(store, "tric", mass_kda=810.0)
        assert _only_named(store, "tric").volume == volume_of_mass(810.0)


def _only_named(store: Store, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in list_classes(store) if c.name == name)


def test_copick_objects_carry_the_volume_as_a_sphere_radius() -> None:
    from cosnet_index.io.copick_project import sphere_radius_angstrom

    assert sphere_radius_angstrom(4 / 3 * np.pi * 5.0**3) == pytest.approx(50.0)
    assert sphere_radius_angstrom(100.0) == pytest.approx(28.794, abs=1e-3)


def test_the_orm_class_tables_match_the_migrations_at_head(tmp_path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cosnet_index.store._engine import make_engine
    from cosnet_index.store.tables import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    schema.upgrade(engine, "head")
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if "classes" in repr(d)] == []
    assert {"volume_nm3", "volume_source", "mass_kda", "volume_note"} <= {
        c["name"] for c in inspect(engine).get_columns("classes")
    }
    engine.dispose()


def test_help_names_the_volume_options() -> None:
    runner = CliRunner()
    text = runner.invoke(cli, ["classes", "set-volume", "--help"]).output
    assert "--mass-kda" in text and "--volume-nm3" in text and "--clear" in text
    text = runner.invoke(cli, ["classes", "add", "--help"]).output
    assert "--mass-kda" in text and "--contour" in text and "molecular volume" in text
    text = runner.invoke(cli, ["segment", "--help"]).output
    assert "--no-prior" in text and "--estimate-volume" in text and "volume_from" in text
