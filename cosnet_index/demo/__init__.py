"""The demo pipeline: the whole product on a simulated collection, every stage timed.

simulate -> create a store -> index -> add one support particle per class -> classify ->
search two classes -> segment their hits (decoder + CRF) -> report. Each stage is a small
function of ``cosnet_index.demo._stages`` over the public APIs; :func:`run_demo` composes them.

The collection mixes real maps held out from training with held-out procedural classes (all
unseen by the shipped model), plus one class that gets no support particle: a structure nobody
named, which the open-set threshold should answer with ``unknown``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cosnet_index.demo import _stages as stages
from cosnet_index.demo._config import (
    DEMO_CLASSES,
    DEMO_NOVEL_CLASSES,
    N_STAGES,
    DemoConfig,
    DemoResult,
)
from cosnet_index.demo._summary import as_json, closed_set_accuracy, summary_lines
from cosnet_index.demo._timing import Stopwatch
from cosnet_index.errors import InputError
from cosnet_index.report import summarize_classification, write_report

__all__ = [
    "DEMO_CLASSES",
    "DEMO_NOVEL_CLASSES",
    "N_STAGES",
    "DemoConfig",
    "DemoResult",
    "run_demo",
    "summary_lines",
]

logger = logging.getLogger(__name__)


def _notes(config: DemoConfig, result: pd.DataFrame) -> list[str]:
    closed = closed_set_accuracy(result, config.classes)
    n = len(config.classes)
    return [
        f"Demo run: `cosnet-index demo --seed {config.seed} --n-tomograms {config.n_tomograms} "
        f"--shape {' '.join(map(str, config.shape_zyx))} --particles {config.n_particles} "
        f"--snr {config.snr:g}`. The {len(config.classes)} support particles themselves are left "
        "out of every figure below.",
        "",
        "Classes without a support particle (expected answer `unknown`): "
        f"{', '.join(f'`{c}`' for c in config.novel_classes) or 'none'}. "
        f"Closed-set accuracy (argmax over the {n} support classes, no unknown threshold; "
        f"comparable to the {n}-way accuracy of `cosnet-index evaluate`): **{closed:.3f}**.",
    ]


_DEMO_OUTPUTS = ("data", "store", "report", "result.parquet", "demo.json")


def _remove_previous_demo(out: Path) -> None:
    """Remove what an earlier demo wrote in ``out`` (only if ``out/demo.json`` marks it as one).

    Raises:
        InputError: ``out`` holds a store that no demo wrote.
    """
    import shutil

    if not (out / "store").exists():
        return
    if not (out / "demo.json").is_file():
        raise InputError(
            f"{out} holds a store that no demo wrote (no demo.json): --force only replaces a "
            "previous demo's output; give another --out"
        )
    for name in _DEMO_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for path in out.glob("hits_*.parquet"):
        path.unlink()
    logger.info("removed the previous demo's output in %s", out)


def run_demo(config: DemoConfig, on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Run the whole demo; ``on_stage(name)`` is called as each stage starts.

    Raises:
        InputError: bad configuration or an existing store in ``out_dir``; CosnetError
            subclasses from the stages.
    """
    from cosnet_index.classes import add_class
    from cosnet_index.query import DEFAULT_MIN_PROB, classify_store, search_store, write_table
    from cosnet_index.store import Store, index_tomograms

    out = Path(config.out_dir)
    store_path = out / "store"
    if config.force:
        _remove_previous_demo(out)
    if store_path.exists():
        raise InputError(
            f"{store_path} already exists: give another --out, or --force to replace the output "
            "of a previous demo there"
        )
    min_prob = DEFAULT_MIN_PROB if config.min_prob is None else config.min_prob
    watch = Stopwatch(on_stage)
    all_classes = (*config.classes, *config.novel_classes)

    with watch.stage("simulate", unit="molecules") as counter:
        collection = stages.simulate_collection(
            out / "data",
            classes=all_classes,
            n_tomograms=config.n_tomograms,
            shape_zyx=config.shape_zyx,
            n_particles=config.n_particles,
            snr=config.snr,
            seed=config.seed,
        )
        counter.n_items = len(collection.truth)

    with watch.stage("create store", unit="") as counter:
        store = Store.create(store_path, model_path=config.weights)
    try:
        with watch.stage("index") as counter:
            index_summary = index_tomograms(
                store,
                list(collection.tomograms),
                collection.coordinates,
                batch_size=config.batch_size,
                progress=False,
            )
            counter.n_items = index_summary.subtomograms_indexed

        with watch.stage("add classes", unit="classes") as counter:
            indexed = stages.indexed_truth(store, collection.truth)
            supports = stages.pick_supports(indexed, config.classes, config.seed)
            for name, subtomogram_id in supports.items():
                add_class(
                    store,
                    name,
                    subtomogram_ids=[subtomogram_id],
                    description="demo: one random particle of the simulated truth",
                )
            counter.n_items = len(supports)

        with watch.stage("classify") as counter:
            result, meta = classify_store(store, classes=list(config.classes), min_prob=min_prob)
            result = result.merge(
                indexed[["id", "true_class"]].rename(columns={"id": "subtomogram_id"}),
                on="subtomogram_id",
                how="left",
            )
            result_path = write_table(result, out / "result.parquet", meta)
            counter.n_items = len(result)

        with watch.stage("search", unit="queries") as counter:
            hits: dict[str, pd.DataFrame] = {}
            for name in config.searched:
                # one more than shown: the support particle itself is its own best match
                table, meta = search_store(store, name, k=config.top_k + 1)
                table = table[table["subtomogram_id"] != supports[name]].head(config.top_k)
                table = table.merge(
                    indexed[["id", "true_class", "tomogram_path"]].rename(
                        columns={"id": "subtomogram_id"}
                    ),
                    on="subtomogram_id",
                    how="left",
                )
                write_table(table.drop(columns="tomogram_path"), out / f"hits_{name}.parquet", meta)
                hits[name] = table
            counter.n_items = len(hits)

        model = store.model()
        box = int(model.config.box)
        with watch.stage("segment (decoder + CRF)" if config.crf else "segment") as counter:
            hit_boxes = {name: stages.read_boxes(t, box) for name, t in hits.items()}
            masks: dict[str, np.ndarray | None] = {}
            rows = []
            for name, table in hits.items():
                decoder, final = stages.segment_boxes(
                    model, hit_boxes[name], crf=config.crf, model_hash=store.model_hash
                )
                masks[name] = final
                truth_masks = stages.truth_masks(collection, table, box)
                seg = table[["subtomogram_id", "class", "true_class"]].copy()
                seg["dice_decoder"] = stages.dice_scores(decoder, truth_masks)
                if config.crf:
                    seg["dice_decoder_crf"] = stages.dice_scores(final, truth_masks)
                rows.append(seg)
            segmentation = pd.concat(rows, ignore_index=True)
            counter.n_items = len(segmentation)

        # the support particles answer themselves: the figures leave them out
        scored = result[~result["subtomogram_id"].isin(list(supports.values()))].copy()
        scored["true_class"] = scored["true_class"].fillna("(no truth)")
        summary = summarize_classification(scored["true_class"], scored["class"], config.classes)
        with watch.stage("report", unit="") as counter:
            support_rows = indexed.set_index("id").loc[[supports[n] for n in hits]].reset_index()
            support_boxes = dict(zip(hits, stages.read_boxes(support_rows, box), strict=True))
            report_path = write_report(
                out / "report",
                scored,
                classes=config.classes,
                galleries=stages.galleries_of(support_boxes, hits, hit_boxes, masks),
                stage_times=list(watch.stages),  # the stages before this one
                segmentation=segmentation,
                min_prob=min_prob,
                title="cosnet-index demo",
                notes=_notes(config, scored),
            )
    finally:
        store.close()

    demo = DemoResult(
        config=config,
        n_simulated=len(collection.truth),
        n_indexed=index_summary.subtomograms_indexed,
        n_skipped=dict(index_summary.subtomograms_skipped),
        result=result,
        scored=scored,
        summary=summary,
        segmentation=segmentation,
        stages=list(watch.stages),
        store_path=store_path,
        result_path=result_path,
        report_path=report_path,
        supports=supports,
        min_prob=min_prob,
    )
    (out / "demo.json").write_text(json.dumps(as_json(demo), indent=2) + "\n")
    return demo
