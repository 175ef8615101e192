"""The `cosnet-index` command line: one click group, one module per verb group.

The CLI is thin: it parses options, calls the library and prints. Heavy imports (torch, faiss)
happen inside commands so that ``--help`` is instant. Library errors (:class:`CosnetError`)
become one-line messages with exit code 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from cosnet_index.cli._app import main

__all__ = ["main"]
