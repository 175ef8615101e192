"""The committed CLI reference (docs/cli.md, README block) matches the current `--help` output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_cli_reference", ROOT / "docs" / "make_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_covers_every_command() -> None:
    generator = _generator()
    paths = [path for path, _ in generator.commands()]
    assert () in paths and len(paths) == len(set(paths))
    text = generator.cli_markdown()
    for path in paths:
        assert f"## {' '.join(('cosnet-index', *path))}\n" in text
        assert generator.help_text(path) in text + "\n"


def test_committed_reference_is_in_sync() -> None:
    stale = _generator().stale()
    assert not stale, (
        f"{[str(p.relative_to(ROOT)) for p in stale]} out of date with `--help`: "
        "run `python docs/make_cli_reference.py` and commit the result"
    )
