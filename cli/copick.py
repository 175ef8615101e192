"""`copick` group: index a copick project, write results back as copick picks and segmentations."""

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

__all__ = ["copick"]

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The copick project configuration (JSON).",
)
session_option = click.option(
    "--session-id",
    default=None,
    help="copick session of what is written (default: the next integer no cosnet-index "
    "picks or segmentations use). The same session again replaces, never duplicates.",
)


@click.group("copick")
def copick() -> None:
    """copick projects: index their tomograms from their picks, write results back.

    Needs the copick extra: pip install 'cosnet-index[copick]'. Positions go in and out in
    copick's convention (angstrom from the volume's corner); a run is known by its name.

    Examples:

        cosnet-index copick index --store ./store --config copick.json --pick-object ribosome

        cosnet-index copick picks --store ./store --config copick.json --result result.parquet

        cosnet-index copick segmentations --config copick.json --segments seg/
    """


@copick.command("index")
@threads_option
@store_options
@config_option
@click.option("--run", "runs", multiple=True, help="Run name (repeatable; default: every run).")
@click.option(
    "--voxel-spacing",
    type=float,
    default=10.0,
    show_default=True,
    help="Voxel spacing (angstrom) of the tomograms to index.",
)
@click.option("--tomo-type", default="wbp", show_default=True, help="Tomogram type to index.")
@click.option("--pick-object", default=None, help="Index picks of this object (default: any).")
@click.option("--pick-user", default=None, help="Picks of this user (default: any but ours).")
@click.option("--pick-session", default=None, help="Picks of this session (default: any).")
@pick_options
@invert_contrast_option("Tomograms have bright molecules: negate.")
@plausibility_options
@edge_option
@click.option("--batch-size", type=int, default=64, show_default=True, help="Boxes per batch.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def index(
    store_path: str,
    db_url: str | None,
    config_path: str,
    runs: tuple[str, ...],
    voxel_spacing: float,
    tomo_type: str,
    pick_object: str | None,
    pick_user: str | None,
    pick_session: str | None,
    pick: str | None,
    diameters: tuple[float, ...],
    min_distance: float | None,
    pick_threshold: float | None,
    max_candidates: int | None,
    invert_contrast: bool,
    contrast_check: str,
    no_size_check: bool,
    edge: str,
    batch_size: int,
    no_progress: bool,
) -> None:
    """Embed the picks of a copick project's runs into the store.

    Each run's tomogram (--voxel-spacing, --tomo-type) is copied once as an MRC file under
    STORE/copick/<project>/ (indexing and segmenting read memory-mapped MRC; an existing copy
    of the same shape is reused) and its picks are indexed as with `cosnet-index index`: the
    same contrast and size checks, resume and no duplicates. The tomogram's name in the store
    is the run's name. With --pick, candidates are found in the runs' tomograms instead (the
    detector of `index --pick`, docs/picking.md) and the project's picks are not read.

    Examples:

        cosnet-index copick index --store ./store --config copick.json --pick-object ribosome

        cosnet-index copick index --store ./store --config copick.json --run TS_01 --run TS_02 \\
            --voxel-spacing 7.84 --tomo-type denoised --pick-user alice

        cosnet-index copick index --store ./store --config copick.json --pick dog --diameter 250
    """
    from cosnet_index.store import Store
    from cosnet_index.store.copick_index import copick_cache_dir, index_copick

    checks = {
        "invert_contrast": invert_contrast,
        "contrast_check": contrast_check,
        "size_check": not no_size_check,
        "edge": edge,
        "batch_size": batch_size,
        "progress": not no_progress,
    }
    if pick is not None and (pick_object or pick_user or pick_session):
        raise click.UsageError(
            "--pick finds candidates, --pick-object/--pick-user/--pick-session read the "
            "project's picks: give one or the other"
        )
    if pick is not None:  # no picks: candidates from the detector of `index --pick`
        from cosnet_index.io.copick_project import materialise_tomograms, open_project
        from cosnet_index.pick import index_picked

        with Store.open(store_path, db_url=db_url) as store:
            root = open_project(config_path)
            paths = materialise_tomograms(
                root,
                copick_cache_dir(store, root),
                runs=list(runs) or None,
                voxel_spacing=voxel_spacing,
                tomo_type=tomo_type,
            )
            summary = index_picked(
                store,
                paths,
                method=pick,
                diameters_angstrom=diameters or None,
                min_distance_angstrom=min_distance,
                threshold=pick_threshold,
                max_candidates=max_candidates,
                **checks,
            )
        for line in summary.lines():
            click.echo(line)
        return
    with Store.open(store_path, db_url=db_url) as store:
        summary = index_copick(
            store,
            config_path,
            runs=list(runs) or None,
            voxel_spacing=voxel_spacing,
            tomo_type=tomo_type,
            pick_object=pick_object,
            pick_user=pick_user,
            pick_session=pick_session,
            **checks,
        )
    for line in summary.lines():
        click.echo(line)


@copick.command("picks")
@store_options
@config_option
@click.option(
    "--result",
    "result_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A classify result or search hits (Parquet) of this store.",
)
@session_option
def picks(
    store_path: str, db_url: str | None, config_path: str, result_path: str, session_id: str | None
) -> None:
    """Write a classify result or search hits back as copick picks.

    One copick object per class (added to the configuration when missing; copick turns '_'
    into '-'), user cosnet-index, one session per call, the probability as each pick's score;
    rows of class 'unknown' are not written. Positions are converted with each tomogram's
    voxel size recorded in the store. A new object of a class with a known molecular volume
    gets the radius (angstrom) of the sphere of that volume.

    Examples:

        cosnet-index copick picks --store ./store --config copick.json --result result.parquet

        cosnet-index copick picks --store ./store --config copick.json --result hits.parquet \\
            --session-id 7
    """
    from cosnet_index.classes import list_classes
    from cosnet_index.defaults import DEFAULT_SET
    from cosnet_index.io.copick_project import next_session_id, open_project, write_picks
    from cosnet_index.query import check_same_model, read_table
    from cosnet_index.store import Store

    table, meta = read_table(result_path)
    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        check_same_model(meta, store.model_hash)
        geometry = store.tomogram_geometry(sorted(set(table["tomogram"].astype(str))))
        volumes = {
            c.name: c.volume.volume_nm3
            for c in list_classes(store, str(meta.get("set") or DEFAULT_SET))
            if c.volume is not None
        }
    root = open_project(config_path)
    session = session_id or next_session_id(root)
    voxel_sizes = {name: g["voxel_size_angstrom"] for name, g in geometry.items()}
    written = write_picks(
        root, table, voxel_sizes, session_id=session, config_path=config_path, volumes_nm3=volumes
    )
    for (run, name), n in sorted(written.items()):
        click.echo(f"{run}: {n} picks of {name}")
    click.echo(f"wrote {sum(written.values())} picks as user cosnet-index, session {session}")


@copick.command("segmentations")
@config_option
@click.option(
    "--segments",
    "segments_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The output folder of `cosnet-index segment --merge` (labels/ + segments.parquet).",
)
@click.option("--name", default="cosnet-index", show_default=True, help="copick segmentation name.")
@session_option
def segmentations(config_path: str, segments_dir: str, name: str, session_id: str | None) -> None:
    """Write `segment --merge` label volumes back as copick multilabel segmentations.

    Each labels/<tomogram>.mrc becomes a multilabel segmentation of the run of that name, at
    the label volume's voxel size, whose voxels hold the copick label of their hit's class. A
    new object of a class whose masks used a volume prior gets the radius of its sphere.

    Examples:

        cosnet-index copick segmentations --config copick.json --segments seg/
    """
    from pathlib import Path

    import mrcfile
    import numpy as np

    from cosnet_index.errors import InputError
    from cosnet_index.io.copick_project import next_session_id, open_project, write_segmentation
    from cosnet_index.query import read_table

    folder = Path(segments_dir)
    labels_dir = folder / "labels"
    if not labels_dir.is_dir() or not (folder / "segments.parquet").is_file():
        raise InputError(
            f"{folder} has no labels/ and segments.parquet: write it with "
            "`cosnet-index segment ... --merge --out DIR`"
        )
    table, _ = read_table(folder / "segments.parquet")
    volumes = {}
    if "volume_from" in table.columns:  # segments of this version: the volume priors
        priors = table[table["volume_from"] == "prior"]
        volumes = priors.groupby("class")["prior_volume_nm3"].first().to_dict()
    root = open_project(config_path)
    session = session_id or next_session_id(root)
    for tomogram, rows in table.groupby("tomogram", sort=True):
        path = labels_dir / f"{tomogram}.mrc"
        if not path.is_file():
            raise InputError(f"{path} is missing; write the segments again with --merge")
        with mrcfile.open(path, permissive=False) as mrc:
            labels = np.asarray(mrc.data)
            voxel = float(mrc.voxel_size.x)
        label_class = dict(zip(rows["label"].astype(int), rows["class"].astype(str), strict=True))
        counts = write_segmentation(
            root, str(tomogram), labels, label_class, voxel, session_id=session,
            config_path=config_path, name=name, volumes_nm3=volumes,
        )  # fmt: skip
        shown = ", ".join(f"{c} {n}" for c, n in counts.items())
        click.echo(f"{tomogram}: segmentation {name!r} at {voxel:g} A ({shown} voxels)")
    click.echo(f"wrote as user cosnet-index, session {session}")
