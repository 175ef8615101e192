"""What an ``index`` run did (:class:`IndexSummary`) and how an interrupted one ends
(:class:`IndexInterrupted`); re-exported by :mod:`cosnet_index.store.indexer`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cosnet_index.store._planning import _Job

__all__ = ["IndexInterrupted", "IndexSummary", "run_summary"]

logger = logging.getLogger("cosnet_index.store.indexer")  # the lines are the index run's


class IndexInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) during ``index``: what was committed stays; re-running resumes.

    Attributes:
        committed: subtomograms committed by this run before the interrupt.
        parts: shard parts committed by this run.
    """

    def __init__(self, committed: int, parts: int) -> None:
        self.committed = committed
        self.parts = parts
        super().__init__(
            f"interrupted: the {committed} subtomograms committed by this run ({parts} parts) "
            "are kept and the part being written was dropped; run the same command again to "
            "resume (it embeds only what the store does not hold)"
        )


@dataclass(frozen=True)
class IndexSummary:
    """What an ``index`` run did.

    Attributes:
        model_hash: the model every new vector records.
        tomograms_indexed: names of the tomograms indexed in this run.
        tomograms_skipped: name -> reason (nothing new to index, no coordinates).
        subtomograms_indexed: vectors added.
        subtomograms_stored_already: coordinates whose position the store already held (not
            embedded again).
        parts: shard parts committed.
        subtomograms_skipped: reason (``outside``, ``edge``) -> count of coordinates without a box.
        resampled: name -> (tomogram voxel size, model voxel size) in angstrom.
        seconds: wall time of the run.
    """

    model_hash: str
    tomograms_indexed: tuple[str, ...] = ()
    tomograms_skipped: dict[str, str] = field(default_factory=dict)
    subtomograms_indexed: int = 0
    subtomograms_skipped: dict[str, int] = field(default_factory=dict)
    resampled: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: float = 0.0
    subtomograms_stored_already: int = 0
    parts: int = 0

    @property
    def rate(self) -> float:
        """Subtomograms per second over the whole run."""
        return self.subtomograms_indexed / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [
            f"indexed {self.subtomograms_indexed} subtomograms from "
            f"{len(self.tomograms_indexed)} tomograms in {self.seconds:.1f} s "
            f"({self.rate:.1f} subtomograms/s) with model {self.model_hash[:12]}"
        ]
        if self.subtomograms_stored_already:
            out.append(
                f"skipped {self.subtomograms_stored_already} coordinates already stored "
                "(same tomogram and position: not embedded again)"
            )
        for reason, count in sorted(self.subtomograms_skipped.items()):
            what = {
                "outside": "centre outside the volume",
                "edge": "box crosses the volume edge (edge policy 'skip'; --edge pad keeps them)",
            }.get(reason, reason)
            out.append(f"skipped {count} coordinates: {what}")
        for name, reason in sorted(self.tomograms_skipped.items()):
            out.append(f"skipped tomogram {name}: {reason}")
        for name, (source, target) in sorted(self.resampled.items()):
            out.append(
                f"resampled {name} from {source:.4g} A to the model's {target:.4g} A voxels "
                "(Fourier cropping/padding)"
            )
        return out


def run_summary(
    model_hash: str,
    jobs: Sequence[_Job],
    skipped_tomograms: dict[str, str],
    *,
    indexed: int,
    parts: int,
    stored_already: int,
    model_voxel_angstrom: float,
    started: float,
) -> IndexSummary:
    """The :class:`IndexSummary` of a run over ``jobs``, each of its lines logged.

    ``stored_already`` counts stored coordinates beyond the jobs' own (skipped tomograms, and
    what another writer committed meanwhile); ``started`` is the run's ``perf_counter``.
    """
    skipped: dict[str, int] = {}
    for job in jobs:
        for reason, count in job.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    summary = IndexSummary(
        model_hash=model_hash,
        tomograms_indexed=tuple(job.tomogram.name for job in jobs),
        tomograms_skipped=skipped_tomograms,
        subtomograms_indexed=indexed,
        subtomograms_skipped=skipped,
        resampled={
            job.tomogram.name: (job.resampled_from, model_voxel_angstrom)
            for job in jobs
            if job.resampled_from is not None
        },
        seconds=time.perf_counter() - started,
        subtomograms_stored_already=sum(job.stored_already for job in jobs) + stored_already,
        parts=parts,
    )
    for line in summary.lines():  # the CLI prints them: at info, -v would show them twice
        logger.debug(line)
    return summary
