"""napari view: the layers as plain data (everywhere), the viewer and the CLI under the
offscreen Qt platform (where napari is installed), clear errors without the extras."""

from __future__ import annotations

import sys

import mrcfile
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cosnet_index.errors import InputError
from cosnet_index.report.view import add_layers, napari_get_reader, open_viewer, view_layers

SHAPE = (20, 30, 40)


@pytest.fixture
def files(tmp_path):  # type: ignore[no-untyped-def]
    tomo = tmp_path / "TS_01.mrc"
    with mrcfile.new(tomo) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=SHAPE).astype(np.float32))
        mrc.voxel_size = 8.0
    labels = tmp_path / "labels.mrc"
    volume = np.zeros(SHAPE, dtype=np.int16)
    volume[5:8, 5:8, 5:8] = 1
    with mrcfile.new(labels) as mrc:
        mrc.set_data(volume)
    result = pd.DataFrame(
        {
            "subtomogram_id": [1, 2, 3, 4, 5],
            "tomogram": ["TS_01", "TS_01", "TS_01", "TS_01", "TS_02"],
            "x": [10.0, 20.0, 30.0, 12.0, 1.0],
            "y": [5.0, 6.0, 7.0, 8.0, 1.0],
            "z": [1.0, 2.0, 3.0, 4.0, 1.0],
            "class": ["ribosome", "tric", "ribosome", "unknown", "tric"],
            "probability": [0.9, 0.8, 0.95, 0.3, 0.99],
            "margin": [0.5, 0.4, 0.6, 0.1, 0.9],
        }
    )
    path = tmp_path / "result.parquet"
    result.to_parquet(path)
    return {"tomo": tomo, "labels": labels, "result": result, "result_path": path}


def test_layers_are_plain_data(files) -> None:
    layers = view_layers(
        files["tomo"], name="TS_01", result=files["result"], labels_path=files["labels"]
    )
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("TS_01", "image"),
        ("ribosome", "points"),
        ("tric", "points"),
        ("unknown", "points"),
        ("segments", "labels"),
    ]
    image, ribosome, tric, unknown, labels = layers
    assert image[0].shape == SHAPE and image[1]["scale"] == (8.0, 8.0, 8.0)
    np.testing.assert_array_equal(ribosome[0], [[1.0, 5.0, 10.0], [3.0, 7.0, 30.0]])  # z, y, x
    np.testing.assert_array_equal(ribosome[1]["features"]["probability"], [0.9, 0.95])
    assert len(tric[0]) == 1  # TS_02's row is left out
    assert ribosome[1]["face_color"] != tric[1]["face_color"]
    assert unknown[1]["visible"] is False and ribosome[1]["visible"] is True
    assert ribosome[1]["size"] == pytest.approx(150.0 / 8.0)
    assert labels[0].sum() == 27 and labels[1]["scale"] == (8.0, 8.0, 8.0)
    with pytest.raises(InputError, match="lacks columns"):
        view_layers(None, name="TS_01", result=files["result"].drop(columns="class"))
    with pytest.raises(InputError, match="nothing to show"):
        view_layers(None, name="TS_01")
    small = files["labels"].with_name("small.mrc")
    with mrcfile.new(small) as mrc:
        mrc.set_data(np.zeros((2, 3, 4), dtype=np.int16))
    with pytest.raises(InputError, match="of the same tomogram"):
        view_layers(files["tomo"], name="TS_01", labels_path=small)


def test_reader_of_a_classify_result(files) -> None:
    assert napari_get_reader(str(files["tomo"])) is None
    assert napari_get_reader([str(files["result_path"])]) is None
    reader = napari_get_reader(str(files["result_path"]))
    assert reader is not None
    layers = reader(files["result_path"])
    assert [kw["name"] for _, kw, _ in layers] == ["ribosome", "tric", "unknown"]
    assert len(layers[1][0]) == 2  # every tomogram's rows, in voxels


def test_without_the_extras_the_error_says_what_to_install(monkeypatch, tmp_path) -> None:
    from cosnet_index.io.copick_project import open_project

    monkeypatch.setitem(sys.modules, "napari", None)
    monkeypatch.setitem(sys.modules, "copick", None)
    with pytest.raises(InputError, match=r"cosnet-index\[view\]"):
        open_viewer([])
    with pytest.raises(InputError, match=r"cosnet-index\[copick\]"):
        open_project(tmp_path / "copick.json")


# napari and its dependencies (pydantic, vispy, Qt) warn on import and on exit: not ours
NAPARI_WARNINGS = (
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
)


def _napari_test(fn):  # type: ignore[no-untyped-def]
    for mark in NAPARI_WARNINGS:
        fn = mark(fn)
    return fn


@pytest.fixture
def napari(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    return pytest.importorskip("napari")


EXPECTED = [
    ("TS_01", "Image"),
    ("ribosome", "Points"),
    ("tric", "Points"),
    ("unknown", "Points"),
    ("segments", "Labels"),
]


@_napari_test
def test_napari_takes_the_layers(files, napari) -> None:
    # napari's own layer classes, without Qt or OpenGL: every kwarg is one napari accepts
    from napari.components import ViewerModel

    layers = view_layers(
        files["tomo"], name="TS_01", result=files["result"], labels_path=files["labels"]
    )
    model = ViewerModel()
    add_layers(model, layers)
    assert [(layer.name, type(layer).__name__) for layer in model.layers] == EXPECTED
    points = model.layers["tric"]
    np.testing.assert_allclose(points.features["probability"], [0.8])
    np.testing.assert_allclose(points.scale, [8.0, 8.0, 8.0])


@_napari_test
def test_viewer_opens_offscreen_with_the_expected_layers(files, napari) -> None:
    layers = view_layers(
        files["tomo"], name="TS_01", result=files["result"], labels_path=files["labels"]
    )
    try:
        viewer = open_viewer(layers, show=False)
    except InputError as exc:  # offscreen without an X display: no OpenGL context
        pytest.skip(str(exc))
    try:
        shown = [(layer.name, type(layer).__name__) for layer in viewer.layers]
        assert shown == EXPECTED
        points = viewer.layers["ribosome"]
        np.testing.assert_allclose(points.features["probability"], [0.9, 0.95])
        np.testing.assert_allclose(points.data, [[1.0, 5.0, 10.0], [3.0, 7.0, 30.0]])
        assert not viewer.layers["unknown"].visible
    finally:
        viewer.close()


@_napari_test
def test_view_command_classifies_the_tomogram_now(toy_store, toy, napari, monkeypatch) -> None:
    from cosnet_index.classes import add_class
    from cosnet_index.cli._app import cli
    from tests._classes_util import ids_by_label

    ids = ids_by_label(toy_store, toy.truth)
    add_class(toy_store, "ball", subtomogram_ids=[ids["ball"][0]])
    add_class(toy_store, "rod", subtomogram_ids=[ids["rod"][0]])
    opened = []
    monkeypatch.setattr(napari, "run", lambda: opened.append(True))
    result = CliRunner().invoke(cli, ["view", "--store", str(toy_store.path), "toy"])
    if "could not open an OpenGL window" in result.output:
        pytest.skip(next(x for x in result.output.splitlines() if "OpenGL window" in x))
    assert result.exit_code == 0, result.output
    assert opened == [True]
    assert "toy (image)" in result.output and "ball (points)" in result.output


@_napari_test
def test_the_napari_manifest_declares_the_reader() -> None:
    npe2 = pytest.importorskip("npe2")
    from importlib import resources

    ref = resources.files("cosnet_index.report") / "napari.yaml"
    with resources.as_file(ref) as path:
        manifest = npe2.PluginManifest.from_file(path)
    (reader,) = manifest.contributions.readers
    assert reader.filename_patterns == ["*.parquet"]
    (command,) = manifest.contributions.commands
    assert command.python_name == "cosnet_index.report.view:napari_get_reader"
