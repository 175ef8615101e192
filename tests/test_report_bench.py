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


def test_committed_page_is_rendered_from_the_recorded_outputs() -> None:
    """docs/performance.md is the records in bench/results/, rendered, nothing typed by hand:
    ``python bench/run_all.py --render-only`` rewrites it."""
    run_all = _run_all()
    records = run_all.load_records(ROOT / "bench" / "results")
    assert records["benchmarks"], "no recorded benchmark"
    page = (ROOT / "docs" / "performance.md").read_text()
    assert run_all.render_records(records) == page
    for page_name, _ in run_all.HAND_MEASURED:
        assert (ROOT / "docs" / page_name).is_file()


def test_a_partial_run_keeps_the_other_benchmarks(tmp_path: Path) -> None:
    run_all = _run_all()
    machine = [("CPU", "test"), ("threads given to each benchmark", "2")]
    reference = [("NumPy float32 matmul 512x512", 12.5, "GFLOP/s")]
    first = [
        ("a.py", "ok", 1.5, "bench/a.py --threads 2", "rate 10/s"),
        ("b.py", "ok", 2.0, "bench/b.py", "rate 20/s"),
    ]
    empty = {"runs": {}, "benchmarks": {}}
    records = run_all.record_run(
        empty, "run 1", "python bench/run_all.py", machine, reference, first
    )
    run_all.save_records(records, tmp_path)
    again = run_all.load_records(tmp_path)
    assert again == records
    one_run = run_all.render_records(again)
    assert "Every figure below was measured in this one run" in one_run
    assert "rate 10/s" in one_run and "rate 20/s" in one_run
    second = [("b.py", "ok", 3.0, "bench/b.py", "rate 30/s")]
    later = [("CPU", "other"), ("threads given to each benchmark", "2")]
    merged = run_all.record_run(
        again, "run 2", "python bench/run_all.py --only b", later, reference, second
    )
    text = run_all.render_records(merged)
    assert "rate 10/s" in text and "rate 30/s" in text and "rate 20/s" not in text
    assert "(run of run 1)" in text and "(run of run 2)" in text and "| CPU | other |" in text
    only_second = run_all.record_run(merged, "run 3", "c", machine, reference, first)
    assert set(only_second["runs"]) == {"run 3"}  # runs nothing refers to are dropped
