"""`view`: a tomogram, its classes and its segments in napari."""

from __future__ import annotations

import click

from cosnet_index.cli._options import min_prob_option, set_option

__all__ = ["view"]


@click.command("view")
@click.option(
    "--store",
    "store_path",
    envvar="COSNET_STORE",
    default=None,
    type=click.Path(file_okay=False),
    help="Store that indexed TOMOGRAM (default: $COSNET_STORE; optional with an MRC path).",
)
@click.option("--db-url", envvar="COSNET_DB_URL", default=None, help="Catalog URL (see init).")
@click.argument("tomogram")
@click.option(
    "--result",
    "result_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="A classify result or search hits (default: classify TOMOGRAM with the store's classes).",
)
@click.option(
    "--segments",
    "segments_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Output folder of `segment --merge`: shows labels/<TOMOGRAM>.mrc.",
)
@set_option()
@min_prob_option("Below this best-class probability a particle is 'unknown' (classifying now).")
@click.option("--point-size", type=float, default=150.0, show_default=True, help="Angstrom.")
def view(
    store_path: str | None,
    db_url: str | None,
    tomogram: str,
    result_path: str | None,
    segments_dir: str | None,
    set_name: str,
    min_prob: float,
    point_size: float,
) -> None:
    """Open TOMOGRAM in napari with a points layer per class and the merged segments.

    TOMOGRAM is the name of a tomogram the store indexed, or an MRC file. Points come from
    --result, or (with a store that has classes) from classifying the tomogram's particles
    now; each class gets a colour, its probability and margin are shown when hovering, and
    'unknown' is a hidden grey layer. Needs the view extra: pip install 'cosnet-index[view]'.
    The same points open from a result file by dropping it on napari (the plugin's reader).

    Examples:

        cosnet-index view --store ./store TS_01

        cosnet-index view --store ./store TS_01 --result result.parquet --segments seg/

        cosnet-index view tomos/TS_01.mrc --result hits.parquet
    """
    from pathlib import Path

    from cosnet_index.errors import InputError
    from cosnet_index.io import tomogram_name
    from cosnet_index.report.view import open_viewer, view_layers

    name = tomogram_name(tomogram)
    path: str | None = tomogram if Path(tomogram).is_file() else None
    voxel = None
    result = None
    if result_path is not None:
        from cosnet_index.query import read_table

        result = read_table(result_path)[0]
    if store_path:
        from cosnet_index.store import Store

        with Store.open(store_path, db_url=db_url, readonly=True) as store:
            record = store.indexed_particles(name)[0]
            if record is not None:
                path = path or record.path
                voxel = float(record.voxel_size_angstrom)
            if result is None and record is not None and store.list_classes(set_name):
                from cosnet_index.query import classify_store

                result = classify_store(
                    store, set_name=set_name, min_prob=min_prob, tomograms=[name]
                )[0]
    if path is None:
        raise InputError(
            f"{tomogram!r} is neither an MRC file nor a tomogram of the store; give its path"
        )
    labels = None
    if segments_dir is not None:
        labels = Path(segments_dir) / "labels" / f"{name}.mrc"
        if not labels.is_file():
            raise InputError(f"{labels} is missing: write it with `segment ... --merge`")
    layers = view_layers(
        path,
        name=name,
        voxel_size_angstrom=voxel,
        result=result,
        labels_path=labels,
        point_size_angstrom=point_size,
    )
    viewer = open_viewer(layers)
    click.echo("napari: " + ", ".join(f"{kw['name']} ({kind})" for _, kw, kind in layers), err=True)
    import napari

    napari.run()
    viewer.close()
