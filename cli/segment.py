"""`cosnet-index segment`: hit masks (decoder, optionally + dense CRF): MRC + Parquet."""

from __future__ import annotations

import click

from cosnet_index.cli._options import (
    cpu_option,
    keep_all_option,
    overwrite_option,
    set_option,
    store_options,
    threads_option,
)

__all__ = ["segment"]


@click.command("segment")
@threads_option
@store_options
@click.option(
    "--hits",
    "hits_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Hits table (.parquet) from `search` or `classify` (needs subtomogram_id).",
)
@click.option("--class", "class_name", default=None, help="Segment the top -k hits of this class.")
@click.option(
    "-k", "k", type=click.IntRange(min=1), default=100, show_default=True, help="Hits with --class."
)
@set_option()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for segments.parquet and masks/ (or labels/ with --merge).",
)
@click.option(
    "--crf/--no-crf",
    "use_crf",
    default=False,
    show_default=True,
    help="Refine the decoder's probability with the fitted 3D dense CRF (default: decoder alone; "
    "the CRF adds under one Dice point, docs/segmentation.md).",
)
@click.option(
    "--merge",
    is_flag=True,
    help="One label volume per tomogram (label = the hit's row in segments.parquet).",
)
@click.option(
    "--crf-params",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="CRF parameter JSON (implies --crf; default: the one fitted for the shipped weights).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Boxes per decoder/CRF batch.",
)
@click.option(
    "--mass-kda",
    "masses",
    multiple=True,
    metavar="[CLASS=]KDA",
    help="Volume prior from the command line: the molecule's mass in kDa, for every hit (120) "
    "or per class (ribosome=3300; repeat); overrides the class's recorded volume.",
)
@click.option(
    "--no-prior",
    is_flag=True,
    help="Ignore the classes' recorded volumes: every mask is p > 0.5 (unless --mass-kda).",
)
@click.option(
    "--estimate-volume",
    is_flag=True,
    help="For a class with no known volume, estimate it from its 32 most probable hits (the "
    "median decoder mask); not better than p > 0.5 yet (docs/segmentation.md).",
)
@cpu_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@keep_all_option(
    "Also segment hits that do not pass (column 'passes' of search; default: passing only).",
)
@overwrite_option()
def segment(
    store_path: str,
    db_url: str | None,
    hits_path: str | None,
    class_name: str | None,
    k: int,
    set_name: str,
    out_dir: str,
    use_crf: bool,
    merge: bool,
    crf_params: str | None,
    batch_size: int,
    masses: tuple[str, ...],
    no_prior: bool,
    estimate_volume: bool,
    cpu: bool,
    no_progress: bool,
    keep_all: bool,
    overwrite: bool,
) -> None:
    """Segment matched hits: decoder probability (-> 3D dense CRF with --crf) -> mask, per hit.

    Each hit's box is cut again from its tomogram (memory-mapped), decoded by the store's model
    and, with --crf, refined by the dense CRF fitted for that model. A hit whose class knows its
    molecular volume (`classes add --map/--model/--mass-kda`, `classes set-volume`; the class
    set is the hits table's, else --set) gets that volume of most probable voxels as its mask,
    the component nearest the centre: the volume prior (--mass-kda overrides it, --no-prior
    turns it off); the others p > 0.5. The output says which masks used a prior. Writes
    OUT/masks/<subtomogram_id>.mrc (one int8 mask per hit, the tomogram's voxel size, header
    origin at the box corner in the tomogram's frame) or, with --merge, OUT/labels/<tomogram>.mrc
    (the tomogram's shape, voxel size and origin; voxel = the label of the most probable hit
    there), and
    OUT/segments.parquet: label, subtomogram_id, tomogram, x, y, z, class, probability, voxels,
    volume_nm3, centroid_x/y/z (tomogram voxels), extent_major/mid/minor_nm (principal axes),
    mean_probability (decoder, inside the mask), prior_voxels (the volume prior's voxel count,
    0 without one), volume_from (prior, estimate or threshold), prior_source (command-line, the
    class's volume source such as map-contour, or collection), prior_volume_nm3, mask_path
    (relative to OUT: masks/<subtomogram_id>.mrc or labels/<tomogram>.mrc; docs/segmentation.md).

    Examples:

        cosnet-index segment --store ./store --hits hits.parquet --out seg/

        cosnet-index segment --store ./store --class ribosome -k 50 --out seg/ --merge

        cosnet-index segment --store ./store --hits hits.parquet --out seg-crf/ --crf

        cosnet-index segment --store ./store --class ribosome --mass-kda ribosome=3300 --out seg/

        cosnet-index segment --store ./store --hits hits.parquet --out seg-plain/ --no-prior
    """
    from tqdm import tqdm

    from cosnet_index.errors import InputError
    from cosnet_index.segment import load_crf_params
    from cosnet_index.segment.hits import segment_hits
    from cosnet_index.segment.prior import prior_report
    from cosnet_index.segment.volume import parse_masses
    from cosnet_index.store import Store

    if (hits_path is None) == (class_name is None):
        raise InputError("give exactly one of --hits FILE or --class NAME")
    if no_prior and estimate_volume:
        raise InputError("--no-prior turns every volume prior off; leave out --estimate-volume")
    masses_kda = parse_masses(masses)
    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        params = None
        if use_crf or crf_params is not None:
            params, _ = load_crf_params(crf_params, model_hash=store.model_hash)
        if hits_path is not None:
            from cosnet_index.query import check_same_model, read_table

            hits, meta = read_table(hits_path)
            check_same_model(meta, store.model_hash, "the hits")
            source = hits_path
            set_name = str(meta.get("set") or set_name)  # the classes the table was made with
        else:
            from cosnet_index.query import search_store

            hits, _ = search_store(store, class_name, k=k, set_name=set_name)
            source = f"top {len(hits)} of class {class_name!r}"
        if not keep_all and "passes" in hits.columns:
            dropped = int((~hits["passes"].astype(bool)).sum())
            hits = hits[hits["passes"].astype(bool)].reset_index(drop=True)
            if dropped:
                click.echo(f"left out {dropped} hits that do not pass (--all keeps them)")
                source += f", {len(hits)} passing"
        with tqdm(total=len(hits), unit="hit", disable=True if no_progress else None) as bar:
            summary = segment_hits(
                store,
                hits,
                out_dir,
                crf_params=params,
                merge=merge,
                batch_size=batch_size,
                device="cpu" if cpu else None,
                overwrite=overwrite,
                progress=lambda done: bar.update(done - bar.n),
                masses_kda=masses_kda,
                set_name=set_name,
                class_prior=not no_prior,
                estimate_volume=estimate_volume,
            )
    table = summary.table
    click.echo(
        f"segmented {len(table)} hits ({source}) in {summary.seconds:.1f} s "
        f"({summary.hits_per_second:.0f}/s, {'decoder + CRF' if params else 'decoder alone'})"
    )
    for line in prior_report(table):
        click.echo(f"  {line}")
    if len(table):
        click.echo(
            f"  median {table['voxels'].median():.0f} voxels, "
            f"{table['volume_nm3'].median():.0f} nm^3; "
            f"{int((table['voxels'] == 0).sum())} empty masks"
        )
    kind = "label volumes" if merge else "masks"
    click.echo(f"  {len(summary.mask_paths)} {kind} and {summary.stats_path}")
