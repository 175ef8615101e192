"""Query commands: `classify`, `search`, `discover` (`export` is in export.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from cosnet_index.cli._options import (
    classes_option,
    cpu_option,
    min_prob_option,
    parse_ids,
    parse_names,
    reduce_option,
    seed_option,
    set_option,
    store_options,
    subtomogram_ids_option,
)
from cosnet_index.defaults import (
    DEFAULT_DISCOVER_MIN_PROB,
    DEFAULT_DISCOVER_MIN_SIZE,
    DEFAULT_RULE,
    RULE_CHOICES,
)

__all__ = ["classify", "discover", "search"]


def _rule_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--rule",
        type=click.Choice(list(RULE_CHOICES)),
        default=None,
        help=help,
    )


@click.command("classify")
@store_options
@classes_option
@set_option()
@_rule_option(
    "Open-set rule: 'collection' (default) fits one threshold per class on the collection "
    "itself (its bulk vs the support's neighbourhood; fixed rule under 50 particles); 'fixed' "
    "uses --min-prob for every class. Giving --min-prob alone means 'fixed'.",
)
@min_prob_option(
    "Fixed rule: best-class probability below which a subtomogram is 'unknown' "
    "(docs/queries.md); the collection rule's fallback."
)
@reduce_option
@click.option(
    "--tomogram",
    "tomograms",
    multiple=True,
    help="Only subtomograms of this tomogram (repeatable).",
)
@subtomogram_ids_option("Only these subtomogram ids (repeatable).")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Result table (.parquet).",
)
@click.option(
    "--stream/--in-memory",
    default=None,
    help="Classify shard by shard, writing as it goes (memory flat in the collection's size; "
    "default for stores of more than a million vectors; rows in shard order).",
)
def classify(
    store_path: str,
    db_url: str | None,
    class_names: str | None,
    set_name: str,
    rule: str | None,
    min_prob: float,
    reduce: str,
    tomograms: tuple[str, ...],
    subtomograms: tuple[str, ...],
    out_path: str,
    stream: bool | None,
) -> None:
    """Give every stored subtomogram its probability for each class, best class and margin.

    Probabilities come from the FAISS L1 distance through the model's head (no network call).
    The table's schema is in docs/queries.md; `export` turns it into STAR files.

    Examples:

        cosnet-index classify --store ./store --out result.parquet

        cosnet-index classify --store ./store --classes ribosome,tric --min-prob 0.7 --out r.parquet

        cosnet-index classify --store ./store --rule fixed --out r.parquet

        cosnet-index classify --store ./store --set chaperones --tomogram TS_01 --out ts01.parquet
    """
    from cosnet_index.query import UNKNOWN, classify_store, write_table
    from cosnet_index.query._streaming import STREAM_ABOVE, classify_store_streaming
    from cosnet_index.store import Store

    source = click.get_current_context().get_parameter_source("min_prob")
    given = source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    selected = bool(tomograms or subtomograms)
    if stream and selected:
        raise click.UsageError("--stream classifies the whole store; drop --tomogram/--ids")
    if stream and rule == "collection":
        raise click.UsageError(
            "--rule collection needs the whole collection in memory; use --in-memory, or "
            "--rule fixed with --stream"
        )
    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        if stream is None and not selected:
            stream = store._count_vectors(store._model_id(None)[0]) > STREAM_ABOVE
            if stream and rule is None:
                click.echo(
                    "streaming a store of more than a million vectors: open-set rule 'fixed' "
                    "(--in-memory for the collection rule)",
                    err=True,
                )
        if stream:
            n, counts, meta = classify_store_streaming(
                store,
                out_path,
                classes=parse_names(class_names),
                set_name=set_name,
                min_prob=min_prob,
                reduce=reduce,  # type: ignore[arg-type]
            )
            click.echo(
                f"classified {n} subtomograms into {len(meta['classes'])} classes -> {out_path} "
                "(streamed)"
            )
            for name in [*meta["classes"], UNKNOWN]:
                click.echo(f"  {name:<24} {int(counts.get(name, 0))}")
            return
        table, meta = classify_store(
            store,
            classes=parse_names(class_names),
            set_name=set_name,
            min_prob=min_prob,
            reduce=reduce,  # type: ignore[arg-type]
            tomograms=list(tomograms) or None,
            ids=parse_ids(subtomograms) or None,
            rule=rule or ("fixed" if given else DEFAULT_RULE),
        )
    path = write_table(table, out_path, meta)
    counts = table["class"].value_counts()
    click.echo(
        f"classified {len(table)} subtomograms into {len(meta['classes'])} classes -> {path}"
    )
    thresholds = meta.get("thresholds", {})
    rule_line = f"open-set rule: {meta.get('rule')}"
    if meta.get("rule_fallback"):
        rule_line += f" (asked for {meta['rule_requested']}: {meta['rule_fallback']})"
    elif meta.get("rule") == "collection":
        rule_line += f" (level {meta['rule_level']:g}, {meta['rule_neighbours']} neighbours)"
    click.echo(rule_line)
    for name in meta["classes"]:
        click.echo(
            f"  {name:<24} {int(counts.get(name, 0)):>8}   unknown below p "
            f"{thresholds.get(name, min_prob):.3f}"
        )
    click.echo(f"  {UNKNOWN:<24} {int(counts.get(UNKNOWN, 0)):>8}")


@click.command("search")
@store_options
@click.argument("name")
@click.option(
    "-k", "k", type=click.IntRange(min=1), default=100, show_default=True, help="Number of hits."
)
@set_option()
@min_prob_option("Drop hits below this probability.", default=0.0)
@reduce_option
@min_prob_option(
    name="--pass-prob",
    help="A hit passes (column 'passes') when classify's open-set rule at this threshold gives "
    "it the class: probability at least this and no class of the set more probable. `export` "
    "and `segment` take passing hits only unless --all.",
)
@cpu_option
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Hits table (.parquet).",
)
def search(
    store_path: str,
    db_url: str | None,
    name: str,
    k: int,
    set_name: str,
    min_prob: float,
    reduce: str,
    pass_prob: float,
    cpu: bool,
    out_path: str | None,
) -> None:
    """Find the K stored subtomograms most likely to be class NAME (FAISS L1, GPU if present).

    Examples:

        cosnet-index search --store ./store ribosome -k 100 --out hits.parquet

        cosnet-index search --store ./store ribosome -k 500 --min-prob 0.9
    """
    from cosnet_index.query import search_store, write_table
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        table, meta = search_store(
            store,
            name,
            k=k,
            set_name=set_name,
            min_prob=min_prob,
            reduce=reduce,  # type: ignore[arg-type]
            gpu=False if cpu else None,
            pass_prob=pass_prob,
        )
    n_pass = int(table["passes"].sum())
    counts = (
        f"{len(table)} hits for {name!r}: {n_pass} pass (p >= {pass_prob:g} and {name!r} the "
        f"best class), {len(table) - n_pass} do not; {int(table['is_support'].sum())} support"
    )
    if out_path:
        click.echo(f"{counts} -> {write_table(table, out_path, meta)}")
        return
    click.echo(counts)
    for row in table.head(20).itertuples():
        flags = ("" if row.passes else "  (does not pass)") + (
            "  [support]" if row.is_support else ""
        )
        click.echo(
            f"  {row.rank:>4}  id {row.subtomogram_id:<8} {row.tomogram} "
            f"({row.x:g}, {row.y:g}, {row.z:g})  p={row.probability:.4f}{flags}"
        )
    if len(table) > 20:
        click.echo("  ... (write them all with --out hits.parquet)")


@click.command("discover")
@store_options
@click.option(
    "--exclude-known",
    is_flag=True,
    help="Cluster only subtomograms that match no class of the set.",
)
@set_option()
@_rule_option(
    "With --exclude-known: classify's open-set rule that decides what matches no class "
    "(default: collection).",
)
@min_prob_option(
    "With --exclude-known and --rule fixed: best-class probability below which a subtomogram "
    "matches no class (the collection rule's fallback).",
    name="--known-prob",
)
@min_prob_option(
    "Head probability at which two subtomograms match (cuts the clustering tree; chosen on the "
    "hard benchmark's discovery table, docs/queries.md).",
    open_interval=True,
    default=DEFAULT_DISCOVER_MIN_PROB,
)
@click.option(
    "--min-size",
    type=click.IntRange(min=1),
    default=DEFAULT_DISCOVER_MIN_SIZE,
    show_default=True,
    help="Smallest cluster proposed (members in the sample).",
)
@click.option(
    "--n-clusters",
    type=click.IntRange(min=1),
    default=None,
    help="Cut into this many clusters instead.",
)
@click.option(
    "--max-sample",
    type=click.IntRange(min=2),
    default=4000,
    show_default=True,
    help="Subtomograms clustered (seeded sample; the rest are assigned).",
)
@seed_option("Sampling seed.")
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write per-subtomogram assignments (.parquet).",
)
def discover(
    store_path: str,
    db_url: str | None,
    exclude_known: bool,
    set_name: str,
    rule: str | None,
    known_prob: float,
    min_prob: float,
    min_size: int,
    n_clusters: int | None,
    max_sample: int,
    seed: int,
    out_path: str | None,
) -> None:
    """Propose candidate novel classes: clusters of subtomograms on the head's L1 geometry.

    Each candidate has a representative member (the medoid); name one with `classes add`.

    Examples:

        cosnet-index discover --store ./store --exclude-known

        cosnet-index discover --store ./store --n-clusters 10 --out candidates.parquet
    """
    from cosnet_index.query import discover_store, write_table
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        candidates, assignments, meta = discover_store(
            store,
            exclude_known=exclude_known,
            set_name=set_name,
            min_prob=min_prob,
            min_size=min_size,
            n_clusters=n_clusters,
            max_sample=max_sample,
            seed=seed,
            rule=rule or DEFAULT_RULE,
            known_prob=known_prob,
        )
    if exclude_known:
        why = f" ({meta['rule_fallback']})" if meta.get("rule_fallback") else ""
        click.echo(f"unknown by the {meta['rule']} open-set rule{why}")
    click.echo(f"{len(candidates)} candidate classes from {len(assignments)} subtomograms")
    for row in candidates.itertuples():
        near = ""
        if "nearest_class" in candidates.columns:
            near = f"  nearest class {row.nearest_class} p={row.nearest_class_probability:.3f}"
        click.echo(
            f"  candidate {row.candidate}: {row.size} members, cohesion {row.cohesion:.3f}, "
            f"representative id {row.representative_id} ({row.tomogram} {row.x:g} {row.y:g} "
            f"{row.z:g}){near}"
        )
    if len(candidates):
        first = int(candidates["representative_id"].iloc[0])
        click.echo(
            f"name one: cosnet-index classes add --store {store_path} NAME --subtomogram {first}"
        )
    if out_path:
        meta["candidates"] = candidates.to_dict(orient="records")
        click.echo(f"assignments -> {write_table(assignments, out_path, meta)}")
