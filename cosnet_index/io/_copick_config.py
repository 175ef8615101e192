"""A copick configuration edited by what this package adds, nothing else (see
:func:`add_objects_to_config`); no copick import, so it is tested without copick."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write

__all__ = ["add_objects_to_config"]


def add_objects_to_config(config_path: str | os.PathLike[str], objects: Sequence[dict]) -> None:
    """Append ``objects`` to the ``pickable_objects`` of a copick configuration, nothing else.

    Every other field (``config_type``, the names of existing objects, their sizes, the order
    of keys) is kept as it is: a shared project's configuration changes only by what this
    package adds (copick's own ``save_config`` re-serialises, and so rewrites, the whole file).

    Raises:
        InputError: the file is not a JSON object.
    """
    path = Path(config_path)
    text = path.read_text(encoding="utf-8")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a JSON copick configuration ({exc})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a JSON object: give a copick configuration")
    present = {o.get("name") for o in config.get("pickable_objects") or []}
    new = [dict(o) for o in objects if o["name"] not in present]
    if not new:
        return
    config["pickable_objects"] = [*(config.get("pickable_objects") or []), *new]
    indent = 4 if '\n    "' in text else (2 if '\n  "' in text else None)
    ending = "\n" if text.endswith("\n") else ""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(config, indent=indent) + ending, encoding="utf-8")
