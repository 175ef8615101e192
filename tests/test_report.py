"""The report module: confusion counts, valid PNGs, a Markdown that names every class."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from cosnet_index.errors import InputError
from cosnet_index.report import (
    Gallery,
    GalleryHit,
    StageTime,
    attach_truth,
    confusion_counts,
    plot_confusion,
    plot_gallery,
    summarize_classification,
    wilson_interval,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["ribosome", "proteasome", "apoferritin"]


def _assert_png(path: Path, min_width: int = 100) -> np.ndarray:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= 50 and image.shape[1] >= min_width
    assert image[..., :3].std() > 0.01, "the image is blank"
    return image


def _sphere_box(radius: float, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A dark sphere in noise, (z, y, x), and its mask."""
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3) - (size - 1) / 2
    mask = (grid**2).sum(axis=0) <= radius**2
    box = rng.normal(0.0, 0.5, (size,) * 3).astype(np.float32) - mask.astype(np.float32)
    return box, mask


def _tables(seed: int = 0, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A truth table with one class outside the support set and a noisy prediction of it."""
    rng = np.random.default_rng(seed)
    names = np.array([*CLASSES, "heldout_blob"])
    true = names[rng.integers(0, len(names), n)]
    pred = true.copy()
    flip = rng.random(n) < 0.25
    pred[flip] = np.array([*CLASSES, "unknown"])[rng.integers(0, 4, int(flip.sum()))]
    pred[pred == "heldout_blob"] = "unknown"
    xyz = rng.uniform(20, 200, (n, 3))
    tomo = np.where(np.arange(n) % 2 == 0, "tomo_a", "tomo_b")
    truth = pd.DataFrame({"tomogram": tomo, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    truth["class"] = true
    result = truth[["tomogram", "x", "y", "z"]].copy()
    result[["x", "y", "z"]] = np.round(result[["x", "y", "z"]])  # indexed at rounded coordinates
    result["class"] = pred
    result["probability"] = rng.uniform(0.5, 1.0, n)
    return result.sample(frac=1.0, random_state=seed), truth


def test_confusion_counts_sum_to_particles_and_place_each_pair() -> None:
    truth = ["a", "a", "b", "c", "c", "c"]
    pred = ["a", "b", "b", "unknown", "a", "unknown"]
    counts = confusion_counts(truth, pred, ["a", "b"])
    assert counts.to_numpy().sum() == len(truth)
    assert list(counts.index) == ["a", "b", "c"]
    assert list(counts.columns) == ["a", "b", "unknown"]
    assert counts.loc["a", "a"] == 1 and counts.loc["a", "b"] == 1
    assert counts.loc["c", "unknown"] == 2 and counts.loc["c", "a"] == 1
    assert counts.loc["b", "unknown"] == 0


def test_confusion_rejects_mismatched_lengths() -> None:
    with pytest.raises(InputError, match="one of each"):
        confusion_counts(["a"], ["a", "b"], ["a"])


def test_plot_confusion_writes_a_png(tmp_path: Path) -> None:
    _, truth = _tables()
    path = tmp_path / "sub" / "confusion.png"
    counts = plot_confusion(truth["class"], truth["class"], CLASSES, path)
    _assert_png(path)
    assert counts.to_numpy().sum() == len(truth)
    assert np.trace(counts.loc[CLASSES, CLASSES].to_numpy()) == truth["class"].isin(CLASSES).sum()


def test_plot_gallery_with_and_without_masks(tmp_path: Path) -> None:
    support, support_mask = _sphere_box(8, seed=1)
    hits = [
        GalleryHit(*_sphere_box(7 + i, seed=10 + i), probability=0.9 - 0.1 * i, label=f"id {i}")
        for i in range(4)
    ]
    hits.append(GalleryHit(_sphere_box(6, seed=99)[0], None, 0.41, "no mask"))
    # a mask with no voxel in the central slices must not warn (pytest turns warnings into errors)
    empty = np.zeros((32, 32, 32), dtype=bool)
    hits.append(GalleryHit(_sphere_box(6, seed=98)[0], empty, 0.40, "empty mask"))
    path = plot_gallery("ribosome", support, hits, tmp_path / "g.png", support_mask=support_mask)
    wide = _assert_png(path)
    small = _assert_png(plot_gallery("ribosome", support, hits[:1], tmp_path / "g1.png"))
    assert wide.shape[1] > small.shape[1], "more hits must give a wider gallery"


def test_gallery_captions_of_long_class_names_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cosnet_index.report.gallery import gallery_figure

    support, _ = _sphere_box(8, seed=1)
    long = "true: mitochondrial-membrane-associated-complex_II"
    hits = [
        GalleryHit(_sphere_box(7, seed=i)[0], None, 0.9, f"id {1000 + i}\n{long}") for i in range(4)
    ]
    fig = gallery_figure("a-rather-long-class-name", support, hits)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes[: len(hits) + 1]]
    for left, right in itertools.pairwise(titles):
        assert left.x1 <= right.x0, "neighbouring captions overlap"


def test_plot_gallery_rejects_bad_boxes(tmp_path: Path) -> None:
    support, _ = _sphere_box(8, seed=1)
    with pytest.raises(InputError, match=r"\(z, y, x\)"):
        plot_gallery("x", support[0], [], tmp_path / "g.png")
    with pytest.raises(InputError, match="mask shape"):
        plot_gallery("x", support, [(support, np.ones((8, 8, 8)), 0.5, "bad")], tmp_path / "g.png")
    nan_box = support.copy()
    nan_box[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        plot_gallery("x", nan_box, [], tmp_path / "g.png")


def test_summary_figures() -> None:
    truth = ["a", "a", "a", "b", "novel", "novel"]
    pred = ["a", "a", "unknown", "a", "unknown", "b"]
    summary = summarize_classification(truth, pred, ["a", "b"])
    assert summary.n_particles == 6
    assert (summary.n_known, summary.n_correct) == (4, 2)
    assert summary.accuracy == pytest.approx(0.5)
    assert summary.n_unknown == 2 and summary.unknown_rate == pytest.approx(2 / 6)
    assert summary.n_novel == 2 and summary.open_set_recall == pytest.approx(0.5)
    assert summary.per_class.loc["a", "recall"] == pytest.approx(2 / 3)
    assert summary.per_class.loc["a", "precision"] == pytest.approx(2 / 3)
    assert summary.per_class.loc["b", "precision"] == 0.0  # predicted once, wrongly
    low, high = summary.accuracy_ci95
    assert 0.0 < low < 0.5 < high < 1.0


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(80, 100)
    assert low == pytest.approx(0.7112, abs=1e-3) and high == pytest.approx(0.8666, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_attach_truth_matches_rounded_coordinates_per_tomogram() -> None:
    result, truth = _tables(seed=3)
    true_class = attach_truth(result, truth)
    expected = truth.set_index(["tomogram"], append=True)["class"].reset_index(level=1, drop=True)
    assert (true_class.loc[result.index] == expected.loc[result.index]).all()
    far = result.copy()
    far["x"] += 50
    assert attach_truth(far, truth).isna().mean() > 0.5


def test_write_report_full(tmp_path: Path) -> None:
    result, truth = _tables(seed=5)
    support, mask = _sphere_box(8, seed=1)
    galleries = [
        Gallery(name, support, [GalleryHit(support, mask, 0.8, "id 1")]) for name in CLASSES[:2]
    ]
    segmentation = pd.DataFrame(
        {"class": ["ribosome", "ribosome", "proteasome"], "dice_decoder": [0.8, 0.9, 0.7]}
    )
    segmentation["dice_crf"] = segmentation["dice_decoder"] + 0.05
    stages = [StageTime("simulate", 2.0, None), StageTime("index", 4.0, 60)]
    path = write_report(
        tmp_path / "rep",
        result,
        classes=CLASSES,
        truth=truth,
        galleries=galleries,
        stage_times=stages,
        segmentation=segmentation,
        min_prob=0.5,
        notes=["seed 5"],
    )
    text = path.read_text()
    for name in [*CLASSES, "heldout_blob", "unknown"]:
        assert name in text
    assert "15.00" in text  # index: 60 subtomograms / 4 s
    assert "0.850" in text  # mean CRF Dice of the ribosome hits
    summary = summarize_classification(truth.loc[result.index, "class"], result["class"], CLASSES)
    assert f"{summary.n_correct}/{summary.n_known}" in text
    for png in ["confusion.png", "gallery_ribosome.png", "gallery_proteasome.png"]:
        _assert_png(path.parent / png)
        assert f"]({png})" in text


def test_write_report_without_truth(tmp_path: Path) -> None:
    result, _ = _tables(seed=6)
    path = write_report(tmp_path, result)
    text = path.read_text()
    assert "unknown rate" in text and "Accuracy" not in text
    assert not (tmp_path / "confusion.png").exists()
    for name in CLASSES:
        assert name in text
    with pytest.raises(InputError, match="no 'label' column"):
        write_report(tmp_path, result, class_column="label")


def test_report_boxes_keep_the_contrast_they_were_indexed_with(tmp_path) -> None:
    from cosnet_index.report._particles import invert_flags, read_boxes
    from cosnet_index.store import Store, index_tomograms
    from tests._crash_util import make_world

    world = make_world(tmp_path / "world", n_tomograms=2, n_per_tomogram=3, n_indexed=0)
    table = pd.read_csv(world.coords)
    for name in ("TS_01", "TS_02"):
        table[table["tomogram"] == name].to_csv(tmp_path / f"{name}.csv", index=False)
    with Store.create(tmp_path / "store", model_path=world.checkpoint) as store:
        index_tomograms(store, [world.tomograms[0]], tmp_path / "TS_01.csv", progress=False)
        index_tomograms(
            store, [world.tomograms[1]], tmp_path / "TS_02.csv", progress=False,
            invert_contrast=True,
        )  # fmt: skip
        rows = store.subtomogram_table()
        flags = invert_flags(store, rows)
        np.testing.assert_array_equal(flags, (rows["tomogram"] == "TS_02").to_numpy())
        plain = read_boxes(rows, 32)
        boxes = read_boxes(rows, 32, invert=flags)
    np.testing.assert_array_equal(boxes[~flags], plain[~flags])
    np.testing.assert_array_equal(boxes[flags], -plain[flags])
    assert np.abs(plain[flags]).sum() > 0


def test_accuracy_leaves_out_the_support_particles(tmp_path: Path) -> None:
    """Issue 19: 0.600 = 108/180 counted the 9 supports; the honest figure left them out."""
    result, truth = _tables(seed=5)
    result = result.copy()
    result["is_support"] = False
    correct = result.index[(result["class"] == truth.loc[result.index, "class"]).to_numpy()]
    result.loc[correct[:4], "is_support"] = True  # 4 supports, classified right by construction
    text = write_report(tmp_path, result, classes=CLASSES, truth=truth).read_text()
    honest = result[~result["is_support"]]
    summary = summarize_classification(truth.loc[honest.index, "class"], honest["class"], CLASSES)
    assert f"({summary.n_correct}/{summary.n_known};" in text
    assert "4 support particle(s)" in text and "left out" in text
