"""Crash safety: SIGKILL `index`, `classes add`, `reindex` or `tomograms remove`; re-run, check.

`index` runs with --coords and with --pick; `tomograms remove` on a world whose template
indexed two tomograms (it removes the second, with --force).

For each command a crash-free reference run is timed first. Each trial copies the same tiny
store, starts the command in a subprocess (torch and faiss already imported, so the kill lands
in the work), kills it with SIGKILL after a seeded uniform delay within the reference run's
duration, runs the same command again, runs `check`, and compares the store with the reference:
the same set of (tomogram, x, y, z), identical vectors, identical classes.

    python bench/crash.py --trials 20 --seed 0
    python bench/crash.py --trials 20 --seed 0 --catalog-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

The second runs every store's catalog on a PostgreSQL server (the URL of a database the user may
create databases from; each store gets its own database, copied from the template store's and
dropped at the end; ``.ci/postgres.sh`` starts a throwaway server). The first: SQLite.

prints the trials, lost vectors, duplicated vectors and check failures (all must be 0), and how
far the killed runs had got. Exit code 1 when any count is not 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._crash_util import COMMANDS, World, crash_trial, make_world, reference_run


def _trials(
    world: World,
    commands: list[str],
    counts: list[int],
    seed: int,
    root: Path,
    remove_world: Callable[[], World],
) -> list:
    """Run ``counts[i]`` crash trials of ``commands[i]``, printing each (``tomograms-remove`` on
    a world of two indexed tomograms, made by ``remove_world``)."""
    results = []
    trial = 0
    for command, count in zip(commands, counts, strict=True):
        if count == 0:
            continue
        if command == "tomograms-remove":
            world = remove_world()
        reference = reference_run(world, command, root / f"ref-{command}")
        print(f"reference {command}: {reference.seconds:.2f} s, {len(reference.table)} vectors")
        for _ in range(count):
            result = crash_trial(world, reference, root / f"trial-{trial}", seed + trial)
            results.append(result)
            status = "ok" if result.ok else "FAIL"
            print(
                f"  trial {trial:>2} {command:<11} kill at {result.delay_s:5.2f} s "
                f"({'killed' if result.killed else 'had finished'}; "
                f"{result.committed_at_kill} shards committed, {result.partial_at_kill} "
                f"temporary files) -> re-run exit {result.rerun_exit}, check "
                f"{'ok' if result.check_ok else 'FAILED'}: {status}"
            )
            for note in result.notes:
                print(f"      {note}")
            trial += 1
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials in all (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument(
        "--commands",
        default=",".join(COMMANDS),
        help=f"comma-separated, trials split evenly in this order (default {','.join(COMMANDS)})",
    )
    parser.add_argument("--tomograms", type=int, default=4, help="tomograms in the world")
    parser.add_argument("--particles", type=int, default=12, help="particles per tomogram")
    parser.add_argument("--workdir", default=None, help="folder for the stores (default: temp)")
    parser.add_argument(
        "--catalog-url",
        default=None,
        help="PostgreSQL admin URL: every store's catalog is a database on that server "
        "(default: SQLite inside each store)",
    )
    args = parser.parse_args(argv)
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    # index gets half of the trials (it has the most moments to be killed at), the rest share
    weights = [2 if c == "index" else 1 for c in commands]
    counts = [args.trials * w // sum(weights) for w in weights]
    counts[0] += args.trials - sum(counts)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        world = make_world(
            root / "world",
            n_tomograms=args.tomograms,
            n_per_tomogram=args.particles,
            n_indexed=1,
            seed=args.seed,
            server=args.catalog_url,
        )
        print(f"catalog: {'PostgreSQL' if args.catalog_url else 'SQLite'}")
        worlds = [world]

        def remove_world() -> World:  # tomograms-remove takes out the 2nd indexed tomogram
            worlds.append(
                make_world(
                    root / "world-remove",
                    n_tomograms=args.tomograms,
                    n_per_tomogram=args.particles,
                    n_indexed=2,
                    seed=args.seed,
                    server=args.catalog_url,
                )
            )
            return worlds[-1]

        try:
            results = _trials(world, commands, counts, args.seed, root, remove_world)
        finally:
            for each in worlds:
                each.drop_databases()

    def total(name: str) -> int:
        return sum(getattr(r, name) for r in results)

    print()
    print(f"trials                {len(results)}")
    print(f"killed mid-run        {sum(r.killed for r in results)}")
    print(f"lost vectors          {total('lost')}")
    print(f"duplicated vectors    {total('duplicated')}")
    print(f"unexpected vectors    {total('extra')}")
    print(f"changed vectors       {total('changed')}")
    print(f"class mismatches      {total('class_mismatch')}")
    print(f"index mismatches      {total('index_mismatch')}")
    print(f"leftover files        {total('leftovers')}")
    print(f"re-run failures       {sum(r.rerun_exit != 0 for r in results)}")
    print(f"check failures        {sum(not r.check_ok for r in results)}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
