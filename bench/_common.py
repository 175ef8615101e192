"""What every benchmark script starts and ends with: its arguments, threads and seed, the model,
and the results it writes.

A script runs as ``python bench/NAME.py`` (so this folder is on ``sys.path``) and begins::

    from _common import bench_parser, load_model, setup_run

    parser = bench_parser(__doc__, checkpoint="default: the shipped weights", quick="...")
    parser.add_argument("--episodes", type=int, default=100)  # its own options
    args = parser.parse_args()
    setup_run(args)  # torch (and numba) threads, torch's seed when the script seeds it
    model, info, path = load_model(args.checkpoint)

``bench/run_all.py`` passes ``--threads`` and ``--quick`` to every script whose ``--help``
lists them, so the shared options keep one name, one type and one default here.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["bench_parser", "load_model", "setup_run", "write_json"]


def bench_parser(
    doc: str | None,
    *,
    threads: int | None = 2,
    seed: int | None = 0,
    checkpoint: str | None = None,
    quick: str | None = None,
) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` described by the first line of ``doc``, with the shared options.

    Args:
        doc: the script's docstring.
        threads: default of ``--threads`` (CPU threads of torch); None leaves the option out.
        seed: default of ``--seed``; None leaves it out.
        checkpoint: help of ``--checkpoint`` (default None: the shipped weights, or what the
            help says); None leaves it out.
        quick: help of ``--quick`` (a smaller run for ``run_all.py --quick``); None leaves it out.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    if checkpoint is not None:
        parser.add_argument("--checkpoint", default=None, help=checkpoint or None)
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed)
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads)
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def setup_run(args: argparse.Namespace, *, numba: bool = False, torch_seed: bool = False) -> None:
    """Threads for this run (``--threads``: torch, and numba's CRF filter when ``numba``), and
    torch's global seed from ``--seed`` when ``torch_seed``."""
    import torch

    threads = getattr(args, "threads", None)
    if threads:
        torch.set_num_threads(threads)
        if numba:
            try:
                import numba as nb

                nb.set_num_threads(threads)
            except ImportError:
                pass
    if torch_seed:
        torch.manual_seed(args.seed)


def load_model(checkpoint: str | os.PathLike[str] | None) -> tuple[Any, Any, Path]:
    """``(model in eval mode, its CheckpointInfo, the checkpoint's path)``; None: the shipped
    weights."""
    from cosnet_index.model import load_checkpoint, load_default_model
    from cosnet_index.model.checkpoint import default_checkpoint_path

    if checkpoint:
        path = Path(checkpoint)
        model, info = load_checkpoint(path)
    else:
        path = default_checkpoint_path()
        model, info = load_default_model()
    model.eval()
    return model, info, path


def write_json(path: str | os.PathLike[str], results: Any) -> Path:
    """Write ``results`` as indented JSON (numbers NumPy or not), atomically."""
    from cosnet_index.files import atomic_write

    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=float))
    return path
