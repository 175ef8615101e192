"""Stage timing for the demo: a stopwatch that records :class:`StageTime` rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cosnet_index.report import StageTime

logger = logging.getLogger(__name__)


@dataclass
class _Counter:
    """Set ``n_items`` inside a ``with stopwatch.stage(...)`` block to report a rate."""

    n_items: int | None = None


@dataclass
class Stopwatch:
    """Times named stages in order; ``on_stage`` is told when each one starts."""

    on_stage: Callable[[str], None] | None = None
    stages: list[StageTime] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, unit: str = "subtomograms") -> Iterator[_Counter]:
        if self.on_stage is not None:
            self.on_stage(name)
        logger.info("stage %s...", name)
        counter = _Counter()
        start = time.perf_counter()
        yield counter
        seconds = time.perf_counter() - start
        self.stages.append(StageTime(name, seconds, counter.n_items, unit))
        logger.info("stage %s done in %.2f s", name, seconds)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)
