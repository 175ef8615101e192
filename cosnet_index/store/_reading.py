"""Indexing, step 2: a reader thread cuts boxes from the memory maps into full batches."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosnet_index.errors import MrcError
from cosnet_index.io import (
    extract_boxes,
)
from cosnet_index.store._planning import _Job


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


@dataclass
class _Batch:
    """Boxes of one forward pass, possibly from several tomograms (sparse tomograms fill it).

    ``segments``: ``(job, start, n)`` slices of the boxes, in order; ``done``: jobs whose last
    box is in this batch (or earlier), to commit once the batch is written.
    """

    segments: list[tuple[int, int, int]]
    boxes: Any  # (b, box, box, box) torch tensor, or None for a batch without boxes
    done: list[int]


def _read_boxes(
    jobs: list[_Job],
    box: int,
    batch_size: int,
    edge: str,
    invert_contrast: bool,
    pin: bool,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    """Reader thread: full :class:`_Batch` es across tomograms, then None (or an exception)."""
    import torch

    parts: list[np.ndarray] = []
    segments: list[tuple[int, int, int]] = []
    done: list[int] = []

    def emit() -> bool:
        boxes = None
        if parts:
            boxes = torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])
            if pin:
                boxes = boxes.pin_memory()
        ok = _put(out, _Batch(list(segments), boxes, list(done)), stop)
        parts.clear()
        segments.clear()
        done.clear()
        return ok

    try:
        for j, job in enumerate(jobs):
            with job.tomogram.open() as tomogram:
                start = 0
                while start < len(job.xyz):
                    n = min(batch_size - sum(s[2] for s in segments), len(job.xyz) - start)
                    boxes, plan = extract_boxes(
                        tomogram.data,
                        job.xyz[start : start + n],
                        box,
                        source_box=job.source_box,
                        edge=edge,
                        invert_contrast=invert_contrast,
                    )
                    if not plan.keep.all():  # planned on this file: it changed since
                        raise MrcError(
                            f"{tomogram.path} changed while it was being indexed (a box planned "
                            "inside it is not); index it again once it is complete"
                        )
                    parts.append(boxes)  # (n, box, box, box)
                    segments.append((j, start, n))
                    start += n
                    if sum(s[2] for s in segments) >= batch_size and not emit():
                        return
            done.append(j)
        if (segments or done) and not emit():
            return
        _put(out, None, stop)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        _put(out, exc, stop)


def _batches(
    jobs: list[_Job], box: int, batch_size: int, edge: str, invert_contrast: bool, pin: bool
) -> Iterator[_Batch]:
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_boxes,
        args=(jobs, box, batch_size, edge, invert_contrast, pin, q, stop),
        name="cosnet-index-reader",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
