"""``atomic_write``: the new file appears whole under its name, or the old one stays."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cosnet_index.files import TMP_MARK, atomic_write

PACKAGE = Path(__file__).resolve().parent.parent / "cosnet_index"


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and TMP_MARK in tmp.name
        tmp.write_text("one")
        assert not target.exists()  # nothing under the final name before the rename
    with atomic_write(target) as tmp:
        tmp.write_text("two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_no_module_renames_files_itself() -> None:
    """Every atomic file write goes through ``cosnet_index.files`` (no ad-hoc os.replace)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "files.py" and path.parent == PACKAGE:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Attribute) and node.attr in {"replace", "rename", "mkstemp"}:
                base = node.value
                # Store.create renames its whole staging folder into place (a folder, not a file)
                staging = "staging" in lines[node.lineno - 1]
                if isinstance(base, ast.Name) and base.id in {"os", "tempfile"} and not staging:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
