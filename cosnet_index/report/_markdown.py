"""Tiny Markdown helpers (no tabulate dependency)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: floats rounded, NaN/None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return "–"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)
    return str(value).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(cell, digits) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def slug(name: str) -> str:
    """A file-name-safe version of a class name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "class"
