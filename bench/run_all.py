"""Run every benchmark in ``bench/`` and write ``docs/performance.md``.

Each ``bench/*.py`` script (except this one and ``_*.py`` helpers) runs in its own process, one
after the other, with the same ``--threads`` (and ``--quick`` when asked and the script takes
it). Their printed figures are already ratios to references measured in the same run; this
script adds the machine they ran on (CPU model, cores, library versions) and its own reference
(NumPy matmul and a torch 3-D convolution, measured in the same run) so that two machines can be
compared. A script that fails is reported as failed, with its output, and the others still run.

    python bench/run_all.py                   # every benchmark, writes docs/performance.md
    python bench/run_all.py --quick --only embed,query --out /tmp/performance.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def machine(threads: int) -> list[tuple[str, str]]:
    """(field, value) rows describing this machine and software."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        import torch

        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        cuda = "torch not installed"
    return [
        ("CPU", _cpu_model()),
        ("cores (logical / usable by this process)", f"{os.cpu_count()} / {usable}"),
        ("threads given to each benchmark", str(threads)),
        ("GPU", cuda),
        ("load average (1 min) at start", f"{os.getloadavg()[0]:.2f}"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("python", platform.python_version()),
        *((name, _version(name)) for name in ("torch", "faiss", "numpy", "scipy")),
        ("cosnet-index", _version("cosnet_index")),
    ]


def reference(threads: int, seconds: float = 1.0) -> list[tuple[str, float, str]]:
    """This run's own machine reference: (name, value, unit)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    matmul = 2 * 512**3 * n / (time.perf_counter() - start) / 1e9

    conv = torch.nn.Conv3d(16, 16, 3, padding=1).eval()
    x = torch.randn(8, 16, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        conv(x)  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            n += 1
    conv_rate = 8 * n / (time.perf_counter() - start)
    return [
        ("NumPy float32 matmul 512x512", matmul, "GFLOP/s"),
        (f"torch Conv3d 16->16 3^3 on 32^3 ({threads} threads)", conv_rate, "volumes/s"),
    ]


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
    results: list[tuple[str, str, float, str, str]],
    command: str,
) -> str:
    """The Markdown of docs/performance.md."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance",
        "",
        f"Generated by `{command}` on {now}. Every figure below was measured in this one run; "
        "each benchmark prints its figures beside (or as ratios to) a reference it measured "
        "itself, so compare ratios across machines, not absolute rates. The machine was shared "
        "with other work, so absolute rates are lower bounds.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine_rows),
        "",
        "## Machine reference (measured in this run)",
        "",
        "| reference | value | unit |",
        "|---|---|---|",
        *(f"| {name} | {value:.1f} | {unit} |" for name, value, unit in reference_rows),
        "",
        "## Benchmarks",
        "",
        "| benchmark | command | status | wall time (s) |",
        "|---|---|---|---|",
        *(
            f"| `{name}` | `python {cmd}` | {status} | {seconds:.1f} |"
            for name, status, seconds, cmd, _ in results
        ),
    ]
    for name, status, _, cmd, output in results:
        lines += ["", f"### {name}", "", f"`python {cmd}`: {status}", "", "```text"]
        lines += [output.rstrip() or "(no output)", "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per benchmark")
    parser.add_argument("--quick", action="store_true", help="pass --quick where supported")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    args = parser.parse_args(argv)

    scripts = discover([s for s in args.only.split(",") if s] or None)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(machine_rows, reference_rows, results, command.strip()))
    print(f"wrote {args.out}")
    return 0 if all(r[1] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
