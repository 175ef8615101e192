"""Run the cosnet-index CLI from a source tree, not from the installed package.

Two uses: a training chunk runs from a frozen copy of the code (a git worktree) so that edits to
the checkout cannot reach it half-way (its lazy imports would otherwise load the new code), and
the GPU chunk runs on a machine where the project is not installed (``bench/train_gpu.sh``).
The repository keeps the CLI in the top-level ``cli/`` folder (installed as ``cosnet_index.cli``),
so that module is mapped by hand.

    python bench/run_from_source.py /path/to/source campaign run runs/campaign --minutes 150
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys


def main() -> None:
    source = pathlib.Path(sys.argv[1]).resolve()
    # an editable install's finder would win over sys.path: drop it
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, str(source))
    import cosnet_index

    if not pathlib.Path(cosnet_index.__file__).resolve().is_relative_to(source):
        raise SystemExit(f"cosnet_index came from {cosnet_index.__file__}, not {source}")
    spec = importlib.util.spec_from_file_location(
        "cosnet_index.cli",
        source / "cli" / "__init__.py",
        submodule_search_locations=[str(source / "cli")],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cosnet_index.cli"] = module
    spec.loader.exec_module(module)
    print(f"code: {source}", flush=True)
    sys.argv = ["cosnet-index", *sys.argv[2:]]
    module.main()


if __name__ == "__main__":
    main()
