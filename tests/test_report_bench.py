"""bench/run_all.py: finds the benchmarks and renders docs/performance.md with the machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_discover_lists_every_benchmark_but_itself() -> None:
    run_all = _run_all()
    scripts = run_all.discover(None)
    names = {p.name for p in scripts}
    expected = {p.name for p in (ROOT / "bench").glob("*.py") if p.name[0] != "_"}
    assert names == expected - {"run_all.py"}
    with pytest.raises(SystemExit, match="no benchmark named"):
        run_all.discover(["no_such_benchmark"])


def test_render_has_machine_reference_and_outputs() -> None:
    run_all = _run_all()
    machine = run_all.machine(threads=2)
    fields = dict(machine)
    assert fields["CPU"] and "torch" in fields and "faiss" in fields
    reference = [("NumPy float32 matmul 512x512", 12.5, "GFLOP/s")]
    results = [
        ("a.py", "ok", 1.5, "bench/a.py --threads 2", "rate 10/s (ratio 0.5 to reference)"),
        ("b.py", "failed (exit 1)", 0.2, "bench/b.py", "Traceback ..."),
    ]
    text = run_all.render(machine, reference, results, "python bench/run_all.py")
    assert "## Machine" in text and fields["CPU"] in text
    assert "| NumPy float32 matmul 512x512 | 12.5 | GFLOP/s |" in text
    assert "| `a.py` | `python bench/a.py --threads 2` | ok | 1.5 |" in text
    assert "ratio 0.5 to reference" in text and "failed (exit 1)" in text
