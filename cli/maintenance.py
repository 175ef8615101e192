"""Store maintenance commands: `check`, `repair`, `stats`."""

from __future__ import annotations

import json

import click

from cosnet_index.cli._options import json_option, store_options

__all__ = ["check", "repair", "stats"]


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


@click.command("check")
@store_options
@click.option(
    "--quick", is_flag=True, help="Skip the checksums (reading every byte of every file)."
)
def check(store_path: str, db_url: str | None, quick: bool) -> None:
    """Verify that catalog, shards and FAISS index agree, checksums too (exit 1 if not).

    Rows, shards and index must agree id by id, and every file must have the checksum recorded
    when it was written (--quick skips the checksums).

    Each damaged file is named with what to do: `reindex` rebuilds a damaged index, `repair`
    embeds a damaged shard again and restores a damaged model file. Queries refuse a store whose
    last full check found damage until it is repaired.

    Examples:

        cosnet-index check --store ./store

        cosnet-index check --store ./store --quick
    """
    from cosnet_index.store import Store, check_store
    from cosnet_index.store.checking import record_damage, recorded_damage

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        store.allow_damaged = True
        report = check_store(store, quick=quick)
        want = {d.path: d.detail for d in report.damaged}
        record = not quick and recorded_damage(store) != want
    if record:  # queries refuse the store while damage is recorded (and run again once not)
        try:
            with Store.open(store_path, db_url=db_url) as store:
                record_damage(store, report)
        except Exception as exc:  # e.g. a store the user may not write: the report still holds
            click.echo(f"warning: the damage found could not be recorded ({exc})", err=True)
    for model, counts in report.counts.items():
        click.echo(
            f"model {model[:12]}: {counts['rows']} rows, {counts['shard_rows']} shard rows, "
            f"{counts['index_ntotal']} in the index"
        )
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo(
            "ok: catalog, shards and index agree"
            + ("" if quick else "; every recorded checksum matches")
        )
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    raise SystemExit(1)


@click.command("repair")
@store_options
@click.option(
    "--tomogram",
    "tomograms",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="An MRC file to read a tomogram from (matched by name) when it moved since indexing; "
    "repeatable.",
)
@click.option("--batch-size", type=int, default=64, show_default=True, help="Boxes per batch.")
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
def repair(
    store_path: str,
    db_url: str | None,
    tomograms: tuple[str, ...],
    batch_size: int,
    device: str | None,
) -> None:
    """Rebuild every file `check` finds damaged, then check again (exit 1 if still not ok).

    A damaged shard is embedded again (exactly its subtomograms, same ids, boxes cut as they
    were indexed, from the tomogram's recorded path or --tomogram); a damaged index is rebuilt
    from the shards; a damaged model file is copied again from the checkpoint `init` copied.
    Files of older stores without a checksum get one when the store passes `check`.

    Examples:

        cosnet-index repair --store ./store

        cosnet-index repair --store ./store --tomogram /new/place/TS_01.mrc
    """
    from cosnet_index.io import tomogram_name
    from cosnet_index.store import Store
    from cosnet_index.store.repair import repair_store

    paths = {tomogram_name(p): p for p in tomograms}
    with Store.open(store_path, db_url=db_url) as store:
        summary = repair_store(store, tomogram_paths=paths, batch_size=batch_size, device=device)
    for line in summary.lines():
        click.echo(line)
    if summary.report.ok:
        click.echo("ok: check passes")
        return
    for problem in summary.report.problems:
        click.echo(f"problem: {problem}", err=True)
    raise SystemExit(1)


@click.command("stats")
@store_options
@json_option
def stats(store_path: str, db_url: str | None, as_json: bool) -> None:
    """Tomograms, subtomograms, models, classes and size of a store.

    Examples:

        cosnet-index stats --store ./store

        cosnet-index stats --store ./store --json
    """
    from cosnet_index.store import Store, store_stats

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        info = store_stats(store)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"store          {info['store']}")
    click.echo(f"schema         {info['schema_revision']}")
    click.echo(f"model          {info['model_hash'][:12]}")
    click.echo(f"tomograms      {info['tomograms']}")
    click.echo(f"subtomograms   {info['subtomograms']}")
    click.echo(f"models         {info['models']}")
    click.echo(f"classes        {info['classes']}")
    click.echo(f"size           {_size(info['size_bytes'])}")
    vector_index = info["vector_index"]
    recall = vector_index.get("recall_at_100")
    click.echo(
        f"vector index   {vector_index['kind']}"
        + ("" if recall is None else f", recall@100 {recall:.3f}")
    )
