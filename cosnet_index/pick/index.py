"""``index`` without coordinates: pick candidates in each tomogram, then index them.

Tomograms are validated first (a bad file raises before the store changes), then candidates
are detected in each memory-mapped tomogram (at its own voxel size, the model's boxes
resampled as ``index`` always does) and indexed through
:func:`~cosnet_index.store.index_tomograms` with the candidate table, in groups of tomograms of
about ``GROUP_SECONDS`` of detection (the FAISS file is rewritten once per group), so each
candidate is stored with ``pick_method``, ``pick_score`` and ``pick_diameter_angstrom`` in its
shard. The detectors are deterministic, so an interrupted run re-detects the same candidates and the
store's position identity resumes it without duplicates.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.pick.blobs import DEFAULT_DOG_THRESHOLD, check_diameters, detect_blobs
from cosnet_index.pick.objectness import DEFAULT_OBJECTNESS_THRESHOLD, objectness_candidates
from cosnet_index.store import IndexSummary, Store, index_tomograms, read_tomogram_headers

__all__ = ["PICK_METHODS", "index_picked", "pick_candidates"]

logger = logging.getLogger(__name__)

PICK_METHODS = ("dog", "decoder")

GROUP_SECONDS = 120.0
"""Detection time after which the tomograms detected so far are indexed together."""


def pick_candidates(
    volume: Any,
    voxel_size_angstrom: float,
    *,
    method: str = "dog",
    diameters_angstrom: Sequence[float] | None = None,
    min_distance_angstrom: float | None = None,
    threshold: float | None = None,
    invert_contrast: bool = False,
    model: Any = None,
    device: str = "cpu",
    max_candidates: int | None = None,
) -> pd.DataFrame:
    """Candidates of one ``(z, y, x)`` volume by ``method`` (``dog`` or ``decoder``).

    Args:
        volume: the (memory-mapped) volume.
        voxel_size_angstrom: its voxel size.
        method: ``dog`` (:func:`~cosnet_index.pick.detect_blobs`) or ``decoder``
            (:func:`~cosnet_index.pick.objectness_candidates`, needs ``model``).
        diameters_angstrom, min_distance_angstrom, invert_contrast, max_candidates: as the
            detectors take them.
        threshold: the method's score threshold (default: the method's default).
        model: the COS-Net model (``decoder`` only).
        device: its torch device.

    Returns:
        ``x, y, z, pick_method, pick_score, pick_diameter_angstrom``, best score first.

    Raises:
        InputError: unknown method, bad diameters, ``decoder`` without a model.
    """
    if method == "dog":
        found = detect_blobs(
            volume,
            voxel_size_angstrom,
            diameters_angstrom,
            min_distance_angstrom=min_distance_angstrom,
            threshold=DEFAULT_DOG_THRESHOLD if threshold is None else threshold,
            invert_contrast=invert_contrast,
            max_candidates=max_candidates,
        )
    elif method == "decoder":
        if model is None:
            raise InputError("--pick decoder needs the store's model")
        found = objectness_candidates(
            volume,
            voxel_size_angstrom,
            model,
            diameters_angstrom,
            min_distance_angstrom=min_distance_angstrom,
            threshold=DEFAULT_OBJECTNESS_THRESHOLD if threshold is None else threshold,
            invert_contrast=invert_contrast,
            device=device,
            max_candidates=max_candidates,
        )
    else:
        raise InputError(f"--pick must be one of {', '.join(PICK_METHODS)}, got {method!r}")
    found.insert(3, "pick_method", method)
    return found


def _check_contrast(
    store: Store,
    info: Any,
    volume: Any,
    found: pd.DataFrame,
    *,
    method: str,
    diameters_angstrom: Sequence[float] | None,
    threshold: float | None,
    invert_contrast: bool,
    contrast_check: str,
) -> None:
    """Pick the other polarity too (DoG) and let the molecules' polarity decide the contrast
    (:func:`~cosnet_index.pick._contrast.check_picked_contrast`).

    Raises:
        ContrastError: the molecules are bright and ``invert_contrast`` is not set.
    """
    from cosnet_index.pick._contrast import check_picked_contrast

    dog_threshold = threshold if method == "dog" and threshold is not None else None
    dog_threshold = DEFAULT_DOG_THRESHOLD if dog_threshold is None else dog_threshold

    def dog(invert: bool) -> pd.DataFrame:
        return detect_blobs(
            volume, info.voxel_size_angstrom, diameters_angstrom, threshold=dog_threshold,
            invert_contrast=invert,
        )  # fmt: skip

    picked = found if method == "dog" else dog(invert_contrast)
    model = store.model()
    check_picked_contrast(
        info,
        picked,
        dog(not invert_contrast),
        box=int(model.config.box),
        model_voxel_angstrom=float(model.config.voxel_size_nm) * 10.0,
        invert_contrast=invert_contrast,
        contrast_check=contrast_check,
    )


def _merge(summaries: list[IndexSummary], model_hash: str, seconds: float) -> IndexSummary:
    skipped: dict[str, int] = {}
    for s in summaries:
        for reason, count in s.subtomograms_skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return IndexSummary(
        model_hash=model_hash,
        tomograms_indexed=tuple(n for s in summaries for n in s.tomograms_indexed),
        tomograms_skipped={k: v for s in summaries for k, v in s.tomograms_skipped.items()},
        subtomograms_indexed=sum(s.subtomograms_indexed for s in summaries),
        subtomograms_skipped=skipped,
        resampled={k: v for s in summaries for k, v in s.resampled.items()},
        seconds=seconds,
        subtomograms_stored_already=sum(s.subtomograms_stored_already for s in summaries),
        parts=sum(s.parts for s in summaries),
    )


def index_picked(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    *,
    method: str = "dog",
    diameters_angstrom: Sequence[float] | None = None,
    min_distance_angstrom: float | None = None,
    threshold: float | None = None,
    max_candidates: int | None = None,
    voxel_size_angstrom: float | None = None,
    invert_contrast: bool = False,
    device: str | None = None,
    **index_options: Any,
) -> IndexSummary:
    """Pick candidates in every tomogram and index them (module docstring).

    Args:
        store: an open, writable store.
        tomogram_paths: MRC files.
        method, diameters_angstrom, min_distance_angstrom, threshold, max_candidates: the
            detector (:func:`pick_candidates`).
        voxel_size_angstrom: override the MRC headers' voxel size.
        invert_contrast: molecules are bright.
        device: torch device (default: CUDA when available, else CPU).
        index_options: passed to :func:`~cosnet_index.store.index_tomograms` (``batch_size``,
            ``edge``, ``progress``, ``commit_every``, ...).

    Returns:
        One :class:`~cosnet_index.store.IndexSummary` for the whole run.

    Raises:
        InputError, MrcError: bad arguments or files (before the store changes); as
            :func:`~cosnet_index.store.index_tomograms` otherwise.
    """
    import torch

    started = time.perf_counter()
    if method not in PICK_METHODS:
        raise InputError(f"--pick must be one of {', '.join(PICK_METHODS)}, got {method!r}")
    check_diameters(diameters_angstrom)
    if not tomogram_paths:
        raise InputError("give at least one tomogram (MRC file) to index")
    infos = read_tomogram_headers(tomogram_paths, voxel_size_angstrom)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = store.model() if method == "decoder" else None
    summaries: list[IndexSummary] = []
    group: list[tuple[Any, pd.DataFrame]] = []  # (info, candidates) detected, not yet indexed
    group_started = time.perf_counter()

    def index_group() -> None:
        if group:
            summaries.append(
                index_tomograms(
                    store,
                    [info.path for info, _ in group],
                    candidates=pd.concat([found for _, found in group], ignore_index=True),
                    voxel_size_angstrom=voxel_size_angstrom,
                    invert_contrast=invert_contrast,
                    device=device,
                    **index_options,
                )
            )
            group.clear()

    for info in infos:
        detect_started = time.perf_counter()
        with info.open() as tomogram:
            found = pick_candidates(
                tomogram.data,
                info.voxel_size_angstrom,
                method=method,
                diameters_angstrom=diameters_angstrom,
                min_distance_angstrom=min_distance_angstrom,
                threshold=threshold,
                invert_contrast=invert_contrast,
                model=model,
                device=device,
                max_candidates=max_candidates,
            )
            if not found.empty and index_options.get("contrast_check", "error") != "off":
                _check_contrast(
                    store, info, tomogram.data, found, method=method,
                    diameters_angstrom=diameters_angstrom, threshold=threshold,
                    invert_contrast=invert_contrast,
                    contrast_check=index_options.get("contrast_check", "error"),
                )  # fmt: skip
        logger.info(
            "%s: %d candidates (%s) in %.1f s",
            info.name,
            len(found),
            method,
            time.perf_counter() - detect_started,
        )
        if found.empty:
            summaries.append(
                IndexSummary(store.model_hash, tomograms_skipped={info.name: "no candidates"})
            )
            continue
        found.insert(0, "tomogram", info.name)
        group.append((info, found))
        # tomograms are indexed in groups of about GROUP_SECONDS of detection: each index call
        # rewrites the FAISS file once, and a kill loses at most one group's detection
        if time.perf_counter() - group_started >= GROUP_SECONDS:
            index_group()
            group_started = time.perf_counter()
    index_group()
    if not any(s.tomograms_indexed or set(s.tomograms_skipped.values()) - {"no candidates"}
               for s in summaries):  # fmt: skip
        raise InputError(
            f"no candidate was found in any of the {len(infos)} tomograms ({method}, diameters "
            f"{', '.join(f'{d:g}' for d in check_diameters(diameters_angstrom))} A, voxel size "
            f"{', '.join(sorted({f'{i.voxel_size_angstrom:g}' for i in infos}))} A); nothing was "
            "stored. Is the voxel size right? Index again with the right one (`cosnet-index index "
            "--voxel-size ANGSTROM ...`, with --replace when the store holds a tomogram at "
            "another), or lower --pick-threshold"
        )
    return _merge(summaries, store.model_hash, time.perf_counter() - started)
