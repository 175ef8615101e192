"""Run every benchmark in ``bench/`` and write ``docs/performance.md`` from their recorded outputs.

Each ``bench/*.py`` script (except this one and ``_*.py`` helpers) runs in its own process, one
after the other, with the same ``--threads`` (and ``--quick`` when asked and the script takes
it). Their printed figures are already ratios to references measured in the same run; this
script adds the machine they ran on (CPU model, cores, library versions) and its own reference
(NumPy matmul and a torch 3-D convolution, measured in the same run) so that two machines can be
compared. A script that fails is reported as failed, with its output, and the others still run.

Every run is recorded in ``bench/results/`` (``run.json``: the runs, their machine and reference,
each benchmark's status, time and command; ``<name>.txt``: its output), and
``docs/performance.md`` is rendered from those records only: a run of some benchmarks
(``--only``) replaces their records and keeps the others', so no figure is lost, and
``--render-only`` rewrites the page from the records without running anything. Figures measured
by hand live in their own pages (:data:`HAND_MEASURED`), linked at the end.

    python bench/run_all.py                   # every benchmark, records + docs/performance.md
    python bench/run_all.py --quick --only embed,query --out /tmp/performance.md
    python bench/run_all.py --render-only     # docs/performance.md from bench/results/
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from _machine import machine, reference  # noqa: E402  (the run's machine and reference)

ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PAGE = ROOT / "docs" / "performance.md"
RUNS_FILE = "run.json"

# pages whose figures were measured by hand (commands and conditions in each), not by this script
HAND_MEASURED: tuple[tuple[str, str], ...] = (
    (
        "scale.md",
        "large stores and Dask (issue 17): classify and search at 1M-10M vectors "
        "(`bench/scale.py`), Dask indexing throughput (`bench/dask_index.py`)",
    ),
)

Result = tuple[str, str, float, str, str]  # name, status, seconds, command, output


def discover(only: list[str] | None) -> list[Path]:
    """The benchmark scripts to run, sorted by name."""
    scripts = sorted(
        p for p in BENCH_DIR.glob("*.py") if p.name != Path(__file__).name and p.name[0] != "_"
    )
    if only:
        wanted = {name.removesuffix(".py") for name in only}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            names = ", ".join(p.stem for p in scripts)
            raise SystemExit(f"no benchmark named {sorted(unknown)}; available: {names}")
        scripts = [p for p in scripts if p.stem in wanted]
    return scripts


def _help(script: Path) -> str:
    """The script's ``--help`` text ('' if it has none), to see which options it takes."""
    try:
        done = subprocess.run(
            [sys.executable, str(script), "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout if done.returncode == 0 else ""


def run_one(
    script: Path, threads: int, quick: bool, timeout_s: float
) -> tuple[str, float, str, str]:
    """Run a benchmark script; (status, seconds, command line, its output)."""
    command = [sys.executable, str(script)]
    options = _help(script)
    if "--threads" in options:
        command += ["--threads", str(threads)]
    if quick and "--quick" in options:
        command.append("--quick")
    shown = " ".join(command[1:]).replace(str(ROOT) + "/", "")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return f"timed out after {timeout_s:.0f} s", time.perf_counter() - start, shown, out
    seconds = time.perf_counter() - start
    status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    output = done.stdout if done.returncode == 0 else done.stdout + done.stderr[-4000:]
    return status, seconds, shown, output


def render(
    machine_rows: list[tuple[str, str]],
    reference_rows: list[tuple[str, float, str]],
    results: list[Result],
    command: str,
    generated: str | None = None,
) -> str:
    """The Markdown of docs/performance.md for one run (``generated``: when; default now)."""
    now = generated or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance",
        "",
        f"Generated by `{command}` on {now}. Every figure below was measured in this one run; "
        "each benchmark prints its figures beside (or as ratios to) a reference it measured "
        "itself, so compare ratios across machines, not absolute rates. The machine was shared "
        "with other work, so absolute rates are lower bounds.",
        "",
        *_machine_lines(
            "Machine", "Machine reference (measured in this run)", machine_rows, reference_rows
        ),
        "## Benchmarks",
        "",
        *_benchmark_lines(results),
    ]
    return "\n".join(lines) + "\n" + _hand_measured()


def _machine_lines(
    title: str,
    reference_title: str,
    machine_rows: list[tuple[str, str]],
    reference_rows: list[tuple[str, float, str]],
) -> list[str]:
    return [
        f"## {title}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine_rows),
        "",
        f"## {reference_title}",
        "",
        "| reference | value | unit |",
        "|---|---|---|",
        *(f"| {name} | {value:.1f} | {unit} |" for name, value, unit in reference_rows),
        "",
    ]


def _benchmark_lines(results: list[Result], runs: dict[str, str] | None = None) -> list[str]:
    """The table of benchmarks and one section per benchmark with its output (``runs``: the
    run each benchmark comes from, when they come from several)."""
    lines = [
        "| benchmark | command | status | wall time (s) |",
        "|---|---|---|---|",
        *(
            f"| `{name}` | `python {cmd}` | {status} | {seconds:.1f} |"
            for name, status, seconds, cmd, _ in results
        ),
    ]
    for name, status, _, cmd, output in results:
        run = f" (run of {runs[name]})" if runs else ""
        lines += ["", f"### {name}", "", f"`python {cmd}`: {status}{run}", "", "```text"]
        lines += [output.rstrip() or "(no output)", "```"]
    return lines


def _hand_measured() -> str:
    """The closing section: the pages whose figures were measured by hand."""
    lines = [
        "",
        "## Measured by hand elsewhere",
        "",
        "Figures this script does not produce (each page gives its commands and conditions):",
        "",
        *(f"- [{page}]({page}): {what}" for page, what in HAND_MEASURED),
    ]
    return "\n".join(lines) + "\n"


def render_records(records: dict[str, Any]) -> str:
    """docs/performance.md from the records of :func:`record_run` (several runs: one machine
    table per run, and each benchmark names its run)."""
    results = [
        (name, b["status"], b["seconds"], b["command"], b["output"])
        for name, b in sorted(records["benchmarks"].items())
    ]
    runs = records["runs"]
    if len(runs) == 1:
        ((run_id, run),) = runs.items()
        return render(*_rows_of(run), results, run["command"], generated=run_id)
    lines = [
        "# Performance",
        "",
        f"Generated by `python bench/run_all.py --render-only` from the recorded outputs of "
        f"{len(runs)} runs of `bench/run_all.py` (`bench/results/`): each benchmark names the "
        "run it comes from. Each benchmark prints its figures beside (or as ratios to) a "
        "reference it measured itself, so compare ratios across runs and machines, not absolute "
        "rates. The machines were shared with other work, so absolute rates are lower bounds.",
        "",
    ]
    for run_id, run in sorted(runs.items()):
        lines += _machine_lines(
            f"Machine of the run of {run_id} (`{run['command']}`)",
            f"Machine reference (measured in the run of {run_id})",
            *_rows_of(run),
        )
    lines += ["## Benchmarks", ""]
    lines += _benchmark_lines(results, {n: b["run"] for n, b in records["benchmarks"].items()})
    return "\n".join(lines) + "\n" + _hand_measured()


def _rows_of(run: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, float, str]]]:
    """The machine and reference rows of a recorded run."""
    machine_rows = list(run["machine"].items())
    reference_rows = [(name, value, unit) for name, (value, unit) in run["reference"].items()]
    return machine_rows, reference_rows


def load_records(folder: Path = RESULTS_DIR) -> dict[str, Any]:
    """The recorded runs and benchmark outputs in ``folder`` (empty when there are none)."""
    index = folder / RUNS_FILE
    if not index.is_file():
        return {"runs": {}, "benchmarks": {}}
    records = json.loads(index.read_text())
    for name, bench in records["benchmarks"].items():
        bench["output"] = (folder / f"{Path(name).stem}.txt").read_text().removesuffix("\n")
    return records


def record_run(
    records: dict[str, Any],
    run_id: str,
    command: str,
    machine_rows: list[tuple[str, str]],
    reference_rows: list[tuple[str, float, str]],
    results: list[Result],
) -> dict[str, Any]:
    """``records`` with this run's benchmarks replacing their earlier records (runs no
    benchmark refers to any more are dropped)."""
    benchmarks = dict(records["benchmarks"])
    for name, status, seconds, cmd, output in results:
        benchmarks[name] = {
            "run": run_id,
            "status": status,
            "seconds": round(seconds, 1),
            "command": cmd,
            "output": output.rstrip(),
        }
    runs = dict(records["runs"])
    runs[run_id] = {
        "command": command,
        "machine": dict(machine_rows),
        "reference": {name: [round(value, 1), unit] for name, value, unit in reference_rows},
    }
    used = {b["run"] for b in benchmarks.values()}
    return {"runs": {k: v for k, v in runs.items() if k in used}, "benchmarks": benchmarks}


def save_records(records: dict[str, Any], folder: Path = RESULTS_DIR) -> None:
    """Write ``run.json`` and one ``<name>.txt`` per benchmark output into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {"runs": records["runs"], "benchmarks": {}}
    for name, bench in sorted(records["benchmarks"].items()):
        (folder / f"{Path(name).stem}.txt").write_text(bench["output"] + "\n")
        index["benchmarks"][name] = {k: v for k, v in bench.items() if k != "output"}
    (folder / RUNS_FILE).write_text(json.dumps(index, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per benchmark")
    parser.add_argument("--quick", action="store_true", help="pass --quick where supported")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=PAGE)
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="the recorded runs, read and updated [bench/results/ for docs/performance.md, "
        "else OUT's name + '-results' beside it]",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="write --out from the records, run nothing"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    args = parser.parse_args(argv)
    if args.results is None:  # a trial page elsewhere never touches the committed records
        same = args.out.resolve() == PAGE.resolve()
        args.results = RESULTS_DIR if same else args.out.with_name(args.out.stem + "-results")

    records = load_records(args.results)
    if args.render_only:
        if not records["benchmarks"]:
            raise SystemExit(f"no recorded benchmark in {args.results}: run some first")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_records(records))
        print(f"wrote {args.out} from {args.results}")
        return 0
    scripts = discover([s for s in args.only.split(",") if s] or None)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_rows = machine(args.threads)
    print(f"machine reference ({args.threads} threads)...", flush=True)
    reference_rows = reference(args.threads)
    results = []
    for script in scripts:
        print(f"running {script.name}...", flush=True)
        status, seconds, cmd, output = run_one(script, args.threads, args.quick, args.timeout)
        print(f"  {status} in {seconds:.1f} s", flush=True)
        results.append((script.name, status, seconds, cmd, output))

    command = "python bench/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:])
    records = record_run(records, run_id, command.strip(), machine_rows, reference_rows, results)
    save_records(records, args.results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_records(records))
    print(f"wrote {args.out} and the records in {args.results}")
    return 0 if all(r[1] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
