"""Smaller items of issue 31: RELION 5 optics pixel sizes, faiss loader messages at -v only,
segments.parquet's mask_path said to be relative to --out."""

from __future__ import annotations

import pandas as pd
import starfile

from cosnet_index.query._tables import export_star


def test_relion5_optics_block_has_the_pixel_sizes(tmp_path) -> None:
    result = pd.DataFrame(
        {"tomogram": ["TS_01", "TS_02"], "x": [10.0, 12.0], "y": [20.0, 22.0], "z": [5.0, 6.0],
         "class": ["a", "a"], "probability": [0.9, 0.8]}
    )  # fmt: skip
    geometry = {
        "TS_01": {"convention": "relion5", "pixel_size_angstrom": None, "optics": None,
                  "voxel_size_angstrom": 10.0, "shape_zyx": [40, 64, 72]},
        "TS_02": {"convention": "relion5", "pixel_size_angstrom": 2.5,
                  "optics": [{"rlnOpticsGroup": 1, "rlnOpticsGroupName": "g", "rlnVoltage": 300.0}],
                  "voxel_size_angstrom": 10.0, "shape_zyx": [40, 64, 72]},
    }  # fmt: skip
    (path,) = export_star(result, tmp_path, geometry=geometry)
    star = starfile.read(path)
    optics = star["optics"].set_index("rlnOpticsGroup")
    groups = star["particles"].set_index("rlnTomoName")["rlnOpticsGroup"]
    first, second = optics.loc[groups["TS_01"]], optics.loc[groups["TS_02"]]
    assert first["rlnTomoTiltSeriesPixelSize"] == 10.0 and first["rlnImagePixelSize"] == 10.0
    assert second["rlnTomoTiltSeriesPixelSize"] == 2.5 and second["rlnImagePixelSize"] == 10.0
    assert second["rlnVoltage"] == 300.0


def test_faiss_loader_messages_follow_the_verbosity() -> None:
    import logging

    from click.testing import CliRunner

    from cosnet_index.cli._app import cli

    faiss_logger = logging.getLogger("faiss.loader")
    root = logging.getLogger()
    saved = root.level, logging.getLogger("faiss").level
    try:
        root.setLevel(logging.INFO)  # as a package that configured logging first leaves it
        assert CliRunner().invoke(cli, ["tomograms", "--help"]).exit_code == 0
        assert not faiss_logger.isEnabledFor(logging.INFO)
        assert CliRunner().invoke(cli, ["-v", "tomograms", "--help"]).exit_code == 0
        assert faiss_logger.isEnabledFor(logging.INFO)
    finally:
        root.setLevel(saved[0])
        logging.getLogger("faiss").setLevel(saved[1])


def test_segment_help_says_mask_path_is_relative_to_out() -> None:
    from click.testing import CliRunner

    from cosnet_index.cli._app import cli

    result = CliRunner().invoke(cli, ["segment", "--help"])
    assert result.exit_code == 0 and "mask_path (relative to OUT" in result.output
