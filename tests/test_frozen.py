"""The one frozen-config serialiser: every config round-trips through JSON, unknown keys fail."""

from __future__ import annotations

import json

import pytest

from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.frozen import frozen_from_dict, frozen_to_dict
from cosnet_index.model import CosNetConfig
from cosnet_index.segment.params import CRFParams
from cosnet_index.simulate import IMAGING_PRESETS, Imaging, ImagingRanges, SimulationConfig

CONFIGS = [
    SimulationConfig(box=24, defocus_um=-3.0),
    Imaging(defocus_um=-2.5, noise_colour="ctf"),
    CRFParams(n_iter=3),
    CosNetConfig(widths=(8, 16, 32)),
    *IMAGING_PRESETS.values(),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_round_trips_through_json(config: object) -> None:
    values = json.loads(json.dumps(config.to_dict()))  # type: ignore[attr-defined]
    assert type(config).from_dict(values) == config  # type: ignore[attr-defined]


def test_tuples_come_back_at_every_level() -> None:
    broad = IMAGING_PRESETS["broad"]
    again = ImagingRanges.from_dict(json.loads(json.dumps(broad.to_dict())))
    assert again.defocus_um == ((-11.0, -9.0), (-6.0, -2.7))
    assert isinstance(again.defocus_um[0], tuple) and again.n_gold == (0, 10)
    assert isinstance(broad.to_dict()["defocus_um"], tuple)  # to_dict keeps the tuples
    assert frozen_to_dict(broad, lists=True)["defocus_um"][0] == [-11.0, -9.0]


@pytest.mark.parametrize(
    ("cls", "error", "words"),
    [
        (SimulationConfig, InputError, "unknown SimulationConfig fields ['bogus']; known:"),
        (Imaging, InputError, "unknown Imaging fields ['bogus']"),
        (CRFParams, InputError, "unknown CRF parameter(s) ['bogus']"),
        (CosNetConfig, CheckpointError, "upgrade cosnet-index"),
    ],
)
def test_unknown_keys_are_refused_with_the_fix(cls: type, error: type, words: str) -> None:
    with pytest.raises(
        error, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        cls.from_dict({"bogus": 1})


def test_missing_keys_keep_their_defaults() -> None:
    assert frozen_from_dict(SimulationConfig, {"box": 16}) == SimulationConfig(box=16)
