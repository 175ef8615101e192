"""`cosnet-index export`: per-class RELION particle STAR files from a classify or search table."""

from __future__ import annotations

import click

from cosnet_index.cli._options import (
    classes_option,
    keep_all_option,
    min_prob_option,
    overwrite_option,
    parse_names,
)

__all__ = ["export"]


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["star"]),
    default="star",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--result",
    "result_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A classify or search table (.parquet).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for one file per class.",
)
@classes_option
@min_prob_option("Only rows with at least this probability.", default=None)
@click.option(
    "--include-unknown",
    is_flag=True,
    help="Also write unknown.star: the particles classify called 'unknown' (with or without "
    "--all).",
)
@keep_all_option(
    "Also write rows that do not pass (a search's non-matches; default: passing only).",
)
@click.option(
    "--convention",
    type=click.Choice(["relion4", "relion5", "voxels"]),
    default=None,
    help="Coordinates to write: relion4 (tilt-series pixels + optics block), relion5 (centred "
    "angstrom) or voxels (default: the convention the particles were indexed from).",
)
@click.option(
    "--one-per-molecule",
    "dedupe_voxels",
    type=click.FloatRange(min=0),
    default=None,
    metavar="VOXELS",
    help="Keep the most probable row of a class among rows closer than VOXELS (a store picked "
    "with --pick holds several candidates per molecule; about a molecule radius).",
)
@overwrite_option()
def export(
    fmt: str,
    result_path: str,
    out_dir: str,
    class_names: str | None,
    min_prob: float | None,
    include_unknown: bool,
    keep_all: bool,
    convention: str | None,
    dedupe_voxels: float | None,
    overwrite: bool,
) -> None:
    """Write per-class RELION particle STAR files from a classify or search result.

    Positions are written the way the particles came in (recorded at `index`): RELION 4
    rlnCoordinateX/Y/Z in tilt-series pixels with the optics block, RELION 5
    rlnCenteredCoordinateX/Y/ZAngst, or rlnCoordinateX/Y/Z in tomogram voxels (CSV, Parquet,
    RELION 3, Warp); --convention chooses. Then rlnClassNumber and rlnAutopickFigureOfMerit.

    Examples:

        cosnet-index export --format star --result result.parquet --out particles/

        cosnet-index export --result r.parquet --out particles/ --classes ribosome --min-prob 0.9

        cosnet-index export --result r.parquet --out particles/ --one-per-molecule 12
    """
    from cosnet_index.query import UNKNOWN, export_star, read_table

    table, meta = read_table(result_path)
    if not keep_all and "passes" in table.columns:
        keep = table["passes"].astype(bool)
        if include_unknown:  # an unknown particle never passes: the flag asks for it
            keep |= table["class"].astype(str) == UNKNOWN
        dropped = int((~keep).sum())
        table = table[keep]
        if dropped:
            click.echo(f"left out {dropped} rows that do not pass (--all keeps them)")
    if dedupe_voxels is not None:
        from cosnet_index.pick import suppress_duplicates

        before = len(table)
        table = suppress_duplicates(table, dedupe_voxels)
        click.echo(f"kept {len(table)} of {before} rows: one per class and molecule")
    paths = export_star(
        table,
        out_dir,
        classes=parse_names(class_names),
        min_prob=min_prob,
        include_unknown=include_unknown,
        overwrite=overwrite,
        geometry=meta.get("tomogram_geometry"),
        convention=convention,
    )
    for path in paths:
        click.echo(f"wrote {path}")
