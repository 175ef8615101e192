"""copick's configuration is shared: this package adds its own objects and changes nothing else."""

from __future__ import annotations

import json

from cosnet_index.io.copick_project import add_objects_to_config

CONFIG = """{
    "config_type": "filesystem",
    "name": "shared project",
    "pickable_objects": [
        {"name": "ribo_80S", "is_particle": true, "label": 1, "radius": 150.0}
    ],
    "overlay_root": "local:///data/overlay",
    "static_root": "local:///data/static"
}
"""


def test_only_new_objects_are_added_and_every_other_field_is_kept(tmp_path) -> None:
    path = tmp_path / "copick.json"
    path.write_text(CONFIG)
    add_objects_to_config(path, [{"name": "ribo_80S", "is_particle": True, "label": 9}])
    assert path.read_text() == CONFIG  # nothing new: the file is left byte for byte
    new = {"name": "proteasome", "is_particle": True, "label": 2, "radius": 80.0}
    add_objects_to_config(path, [new])
    before, after = json.loads(CONFIG), json.loads(path.read_text())
    assert after["pickable_objects"] == [*before["pickable_objects"], new]
    assert list(after) == list(before)  # config_type kept, key order kept
    assert {k: v for k, v in after.items() if k != "pickable_objects"} == {
        k: v for k, v in before.items() if k != "pickable_objects"
    }
    assert all(o.get("radius") is not None for o in after["pickable_objects"])
