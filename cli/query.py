"""Query commands: `classify`, `search`, `discover` (`export` is in export.py)."""

from __future__ import annotations

import click

from cosnet_index.cli._open_set import class_line, resolve_rule, rule_lines, rule_option
from cosnet_index.cli._options import (
    classes_option,
    cpu_option,
    max_lost_option,
    min_prob_option,
    parse_ids,
    parse_names,
    reduce_option,
    seed_option,
    set_option,
    store_options,
    subtomogram_ids_option,
    threads_option,
)
from cosnet_index.defaults import (
    DEFAULT_DISCOVER_MIN_PROB,
    DEFAULT_DISCOVER_MIN_SIZE,
    DEFAULT_RULE,
)

__all__ = ["classify", "discover", "search"]


@click.command("classify")
@threads_option
@store_options
@classes_option
@set_option()
@rule_option(
    "Open-set rule: 'mixture' (default) fits each class's scores on the collection as members "
    "plus the rest and sets its threshold at --max-lost of the members (a class with no second "
    "mode flags nothing); 'collection': between the collection's bulk and the support's "
    "neighbourhood; 'fixed': --min-prob for every class. --min-prob alone means 'fixed'.",
)
@max_lost_option(
    "Mixture rule: the fraction of each named class's particles you accept to lose to "
    "'unknown'; the threshold that meets it is estimated from the collection, without labels."
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
    max_lost: float,
    min_prob: float,
    reduce: str,
    tomograms: tuple[str, ...],
    subtomograms: tuple[str, ...],
    out_path: str,
    stream: bool | None,
) -> None:
    """Give every stored subtomogram its probability for each class, best class and margin.

    Probabilities come from the FAISS L1 distance through the model's head (no network call).
    A subtomogram is 'unknown' below its best class's threshold: by default the threshold that
    loses --max-lost of the class's members, estimated on the collection; the command prints,
    and the table's metadata records, each class's threshold, estimated loss and estimated
    novel particles. The table's schema is in docs/queries.md; `export` writes STAR files.

    Examples:

        cosnet-index classify --store ./store --out result.parquet

        cosnet-index classify --store ./store --max-lost 0.02 --out result.parquet

        cosnet-index classify --store ./store --classes ribosome,tric --min-prob 0.7 --out r.parquet

        cosnet-index classify --store ./store --rule fixed --out r.parquet

        cosnet-index classify --store ./store --set chaperones --tomogram TS_01 --out ts01.parquet
    """
    from cosnet_index.query import UNKNOWN, classify_store, write_table
    from cosnet_index.query._streaming import STREAM_ABOVE, classify_store_streaming
    from cosnet_index.store import Store

    asked = resolve_rule(rule, "min_prob", "--min-prob")
    selected = bool(tomograms or subtomograms)
    if stream and selected:
        raise click.UsageError("--stream classifies the whole store; drop --tomogram/--ids")
    if stream and asked == "collection":
        raise click.UsageError(
            "the collection rule needs the whole collection in memory; use --in-memory, or "
            "the mixture or fixed rule with --stream"
        )
    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        if stream is None and not selected and asked != "collection":
            stream = store._count_vectors(store._model_id(None)[0]) > STREAM_ABOVE
            if stream:
                click.echo("streaming a store of more than a million vectors", err=True)
        if stream:
            n, counts, meta = classify_store_streaming(
                store,
                out_path,
                classes=parse_names(class_names),
                set_name=set_name,
                min_prob=min_prob,
                reduce=reduce,  # type: ignore[arg-type]
                rule=asked,
                max_lost=max_lost,
            )
            click.echo(
                f"classified {n} subtomograms into {len(meta['classes'])} classes -> {out_path} "
                "(streamed)"
            )
            for line in rule_lines(meta):
                click.echo(line)
            for name in meta["classes"]:
                click.echo(class_line(meta, name, str(int(counts.get(name, 0)))))
            click.echo(f"  {UNKNOWN:<24} {int(counts.get(UNKNOWN, 0)):>8}")
            return
        table, meta = classify_store(
            store,
            classes=parse_names(class_names),
            set_name=set_name,
            min_prob=min_prob,
            reduce=reduce,  # type: ignore[arg-type]
            tomograms=list(tomograms) or None,
            ids=parse_ids(subtomograms) or None,
            rule=asked,
            max_lost=max_lost,
        )
    path = write_table(table, out_path, meta)
    counts = table["class"].value_counts()
    click.echo(
        f"classified {len(table)} subtomograms into {len(meta['classes'])} classes -> {path}"
    )
    for line in rule_lines(meta):
        click.echo(line)
    for name in meta["classes"]:
        click.echo(class_line(meta, name, str(int(counts.get(name, 0)))))
    click.echo(f"  {UNKNOWN:<24} {int(counts.get(UNKNOWN, 0)):>8}")


@click.command("search")
@threads_option
@store_options
@click.argument("name")
@click.option(
    "-k", "k", type=click.IntRange(min=1), default=100, show_default=True, help="Number of hits."
)
@set_option()
@min_prob_option("Drop hits below this probability.", default=0.0)
@reduce_option
@rule_option(
    "The open-set rule that decides which hits pass (column 'passes'): classify's, fitted on "
    "the whole collection (default 'mixture'; --pass-prob alone means 'fixed'). A hit passes "
    "when no class of the set is more probable and its probability reaches the class's "
    "threshold. `export` and `segment` take passing hits only unless --all.",
)
@max_lost_option("Mixture rule: the fraction of the class's particles you accept to lose.")
@min_prob_option(
    name="--pass-prob",
    help="Fixed rule: the probability a hit must reach to pass (the collection rule's fallback).",
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
    rule: str | None,
    max_lost: float,
    pass_prob: float,
    cpu: bool,
    out_path: str | None,
) -> None:
    """Find the K stored subtomograms most likely to be class NAME (FAISS L1, GPU if present).

    Each hit says whether it passes: whether `classify` would give it class NAME.

    Examples:

        cosnet-index search --store ./store ribosome -k 100 --out hits.parquet

        cosnet-index search --store ./store ribosome -k 500 --max-lost 0.1

        cosnet-index search --store ./store ribosome -k 500 --min-prob 0.9
    """
    from cosnet_index.query import search_store, write_table
    from cosnet_index.store import Store

    asked = resolve_rule(rule, "pass_prob", "--pass-prob")
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
            rule=asked,
            max_lost=max_lost,
        )
    n_pass = int(table["passes"].sum())
    counts = (
        f"{len(table)} hits for {name!r}: {n_pass} pass (p >= {meta['pass_threshold']:.3f} and "
        f"{name!r} the best class), {len(table) - n_pass} do not; "
        f"{int(table['is_support'].sum())} support"
    )
    for line in rule_lines(meta):
        click.echo(line)
    click.echo(class_line(meta, name, f"{n_pass} pass"))
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
@threads_option
@store_options
@click.option(
    "--exclude-known",
    is_flag=True,
    help="Cluster only subtomograms that match no class of the set.",
)
@set_option()
@rule_option(
    "With --exclude-known: classify's open-set rule that decides what matches no class "
    "(default: mixture).",
)
@max_lost_option("With --exclude-known and the mixture rule: as classify --max-lost.")
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
    max_lost: float,
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
            max_lost=max_lost,
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
