"""Store commands: `init`, `db upgrade|current|downgrade`, `index`, `reindex` (`check`, `repair`
and `stats`: ``maintenance.py``)."""

from __future__ import annotations

import click

from cosnet_index.cli._options import (
    edge_option,
    invert_contrast_option,
    plausibility_options,
    store_options,
    threads_option,
)
from cosnet_index.cli._pick import pick_options

__all__ = ["db", "index", "init", "reindex"]


@click.command("init")
@store_options
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Checkpoint whose vectors the store holds (default: the shipped weights).",
)
def init(store_path: str, db_url: str | None, model_path: str | None) -> None:
    """Create a new, empty store at the newest schema.

    The checkpoint is copied into the store; every vector will record its weights hash.

    Examples:

        cosnet-index init --store ./store

        cosnet-index init --store ./store --model runs/a/cosnet.pt

        cosnet-index init --store ./store --db-url postgresql+psycopg://me@db/cosnet
    """
    from cosnet_index.store import Store

    with Store.create(store_path, model_path=model_path, db_url=db_url) as store:
        click.echo(f"created store {store.path} (model {store.model_hash[:12]})")


@click.group("db")
def db() -> None:
    """Inspect and migrate the catalog schema (Alembic).

    Examples:

        cosnet-index db current --store ./store

        cosnet-index db upgrade --store ./store
    """


@db.command("current")
@store_options
def db_current(store_path: str, db_url: str | None) -> None:
    """Print the catalog's schema revision and this version's newest.

    Examples:

        cosnet-index db current --store ./store
    """
    from cosnet_index.store import Store, schema

    with Store.open_unchecked(store_path, db_url=db_url, readonly=True) as store:
        current = store.schema_revision()
    head = schema.head_revision()
    state = "up to date" if current == head else "run `cosnet-index db upgrade`"
    click.echo(f"current: {current or '(empty)'}  head: {head}  ({state})")


@db.command("upgrade")
@store_options
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(store_path: str, db_url: str | None, revision: str) -> None:
    """Migrate the catalog up to the newest schema (or --revision).

    Examples:

        cosnet-index db upgrade --store ./store
    """
    from cosnet_index.store import Store

    with Store.open_unchecked(store_path, db_url=db_url) as store, store.write_lock():
        before, after = store.migrate(revision)
    click.echo(f"schema {before or '(empty)'} -> {after}")


@db.command("downgrade")
@store_options
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def db_downgrade(store_path: str, db_url: str | None, revision: str, yes: bool) -> None:
    """Migrate the catalog down to REVISION: 0001, -1 for one step, or base (drops every table).

    Examples:

        cosnet-index db downgrade --store ./store -1 --yes
    """
    from cosnet_index.store import Store

    if not yes:
        click.confirm(f"downgrade the catalog of {store_path} to {revision}?", abort=True)
    with Store.open_unchecked(store_path, db_url=db_url) as store, store.write_lock():
        before, after = store.migrate(revision, down=True)
    click.echo(f"schema {before or '(empty)'} -> {after or '(empty)'}")


@click.command("index")
@threads_option
@store_options
@click.argument("tomograms", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--coords",
    default=None,
    type=click.Path(dir_okay=False),
    help="Coordinates: RELION 3.1/4/5 or Warp STAR, CSV (x,y,z[,tomogram]) or Parquet. "
    "Without it, candidates are picked (--pick).",
)
@pick_options
@click.option(
    "--voxel-size",
    type=float,
    default=None,
    help="Voxel size in angstrom for every tomogram (overrides the MRC headers).",
)
@click.option("--batch-size", type=int, default=64, show_default=True, help="Boxes per batch.")
@invert_contrast_option("Tomograms have bright molecules: negate.")
@plausibility_options
@edge_option
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@click.option(
    "--commit-every",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Boxes of a tomogram per committed part: Ctrl-C loses at most one part.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--replace",
    is_flag=True,
    help="Re-index the TOMOGRAMS from scratch with this run's settings (voxel size, contrast, "
    "edge, coordinates or picking): those the store holds are removed first, once every input "
    "is checked (as `tomograms remove`).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Embed on a local Dask cluster of N worker processes (needs the cluster extra).",
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    default=None,
    help="Embed on an existing Dask cluster, e.g. tcp://node:8786 (docs/cluster.md).",
)
def index(
    store_path: str,
    db_url: str | None,
    tomograms: tuple[str, ...],
    coords: str | None,
    pick: str | None,
    diameters: tuple[float, ...],
    min_distance: float | None,
    pick_threshold: float | None,
    max_candidates: int | None,
    voxel_size: float | None,
    batch_size: int,
    invert_contrast: bool,
    contrast_check: str,
    no_size_check: bool,
    edge: str,
    device: str | None,
    commit_every: int,
    no_progress: bool,
    replace: bool,
    workers: int | None,
    dask_scheduler: str | None,
) -> None:
    """Embed every subtomogram listed in --coords from the TOMOGRAMS (MRC) into the store.

    Without --coords, candidate particles are picked in each tomogram (--pick dog, at the
    --diameter sizes) and stored with their method and score (docs/picking.md).

    Tomograms are matched to coordinate rows by name (rlnTomoName, rlnMicrographName or a
    'tomogram' column; the MRC file's stem); rows naming other tomograms are skipped. Work is
    committed in parts of --commit-every boxes; a particle is known by its tomogram and
    position (0.01 voxel), so running the command again (after Ctrl-C, or with more picks)
    embeds only what the store does not hold and never stores a particle twice.

    Before anything is written, the picks are compared with random background boxes: molecules
    brighter than the background stop the run (--invert-contrast, or --contrast-check off), and
    an apparent molecule size that does not fit the voxel size gets a warning. A stored
    tomogram is indexed again only with the settings it was indexed with (voxel size, contrast,
    --edge, coordinates or picking method); --replace re-indexes it from scratch with new ones.

    Examples:

        cosnet-index index --store ./store tomos/*.mrc --coords particles.star

        cosnet-index index --store ./store TS_01.mrc --coords picks.csv --voxel-size 10

        cosnet-index index --store ./store tomos/*.mrc --coords particles.star --workers 4

        cosnet-index index --store ./store tomos/*.mrc --pick dog --diameter 150 --diameter 250

        cosnet-index index --store ./store TS_01.mrc --coords picks.csv --voxel-size 10 --replace
    """
    from cosnet_index.store import Store, index_tomograms
    from cosnet_index.store.indexer import IndexInterrupted

    if coords is not None and pick is not None:
        raise click.UsageError("give --coords or --pick, not both")
    if (workers is not None or dask_scheduler is not None) and coords is None:
        raise click.UsageError(
            "--workers/--dask-scheduler need --coords: picking runs in one process (drop "
            "--workers, or pick first and index the candidates with --coords)"
        )
    if replace and (workers is not None or dask_scheduler is not None):
        raise click.UsageError(
            "--replace runs in one process: drop --workers/--dask-scheduler, or remove the "
            "tomograms first (`cosnet-index tomograms remove`)"
        )
    common = {
        "voxel_size_angstrom": voxel_size,
        "batch_size": batch_size,
        "invert_contrast": invert_contrast,
        "edge": edge,
        "device": device,
        "commit_every": commit_every,
        "contrast_check": contrast_check,
        "size_check": not no_size_check,
    }
    with Store.open(store_path, db_url=db_url) as store:
        try:
            if workers is not None or dask_scheduler is not None:
                from cosnet_index.store.distributed import index_on_dask

                summary = index_on_dask(
                    store, list(tomograms), coords, workers=workers, scheduler=dask_scheduler,
                    **common,
                )  # fmt: skip
            elif coords is None:
                from cosnet_index.pick import index_picked

                summary = index_picked(
                    store,
                    list(tomograms),
                    method=pick or "dog",
                    diameters_angstrom=diameters or None,
                    min_distance_angstrom=min_distance,
                    threshold=pick_threshold,
                    max_candidates=max_candidates,
                    progress=not no_progress,
                    replace=replace,
                    **common,
                )
            else:
                summary = index_tomograms(
                    store,
                    list(tomograms),
                    coords,
                    progress=not no_progress,
                    replace=replace,
                    **common,
                )
        except IndexInterrupted as exc:
            click.echo(str(exc), err=True)
            raise SystemExit(130) from None
    for line in summary.lines():
        click.echo(line)


@click.command("reindex")
@store_options
@click.option(
    "--index-type",
    type=click.Choice(["flat", "ivf", "ivf-fp16", "ivf-pq"]),
    default="flat",
    show_default=True,
    help="flat: exact L1; ivf: L1 inverted lists; ivf-fp16 / ivf-pq: compressed inverted lists "
    "whose candidates are re-scored exactly (stores of millions of vectors, docs/scale.md).",
)
@click.option("--nlist", type=int, default=None, help="IVF lists (default 4*sqrt(n)).")
@click.option("--nprobe", type=int, default=None, help="IVF lists searched (default 32 / 64).")
@click.option("--pq-m", type=int, default=None, help="ivf-pq bytes per vector (default dim/8).")
@click.option(
    "--candidates",
    type=click.IntRange(min=1),
    default=None,
    help="ivf-fp16/ivf-pq: vectors proposed per query and re-scored exactly (default 1000).",
)
def reindex(
    store_path: str,
    db_url: str | None,
    index_type: str,
    nlist: int | None,
    nprobe: int | None,
    pq_m: int | None,
    candidates: int | None,
) -> None:
    """Rebuild the FAISS index from the Parquet shards (the shards are the truth).

    Other kinds than flat measure their recall@100 against brute force on stored vectors;
    `stats` shows it.

    Examples:

        cosnet-index reindex --store ./store

        cosnet-index reindex --store ./store --index-type ivf-fp16 --nprobe 64
    """
    from cosnet_index.store import Store
    from cosnet_index.store import reindex as rebuild
    from cosnet_index.store.maintenance import vector_index_record

    with Store.open(store_path, db_url=db_url) as store:
        n = rebuild(
            store,
            index_type=index_type,
            nlist=nlist,
            nprobe=nprobe,
            pq_m=pq_m,
            candidates=candidates,
        )
        record = vector_index_record(store) or {}
    click.echo(f"rebuilt the {index_type} index: {n} vectors")
    if record.get("recall_queries"):
        click.echo(
            f"recall@100 against brute force: {record['recall_at_100']:.3f} "
            f"({record['recall_queries']} stored vectors as queries)"
        )
