"""The `cosnet-index` command line: one click group, one module per verb group.

The CLI is thin: it parses options, calls the library and prints. Heavy imports (torch, faiss)
happen inside commands so that ``--help`` is instant. Library errors (:class:`CosnetError`)
become one-line messages with exit code 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os

# Before torch (and its OpenMP runtime) is loaded: OpenMP threads that wait at a barrier sleep
# instead of spinning, unless the user chose otherwise. Beside another busy process a spinning
# thread burns the core its descheduled partner needs, and idle the spinning competes with the
# reader thread that cuts boxes (bench/threads.py, docs/cluster.md; issue 32).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cosnet_index.cli._app import main

__all__ = ["main"]
