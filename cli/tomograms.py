"""Tomogram commands: `tomograms list | remove | rename`."""

from __future__ import annotations

import json

import click

from cosnet_index.cli._options import json_option, store_options

__all__ = ["tomograms"]


@click.group("tomograms")
def tomograms() -> None:
    """List, remove and rename the tomograms of a store.

    Examples:

        cosnet-index tomograms list --store ./store

        cosnet-index tomograms remove --store ./store TS_01

        cosnet-index tomograms rename --store ./store tomo_00 TS_01
    """


@tomograms.command("list")
@store_options
@json_option
def list_command(store_path: str, db_url: str | None, as_json: bool) -> None:
    """The tomograms of the store and the settings each was indexed with.

    Examples:

        cosnet-index tomograms list --store ./store

        cosnet-index tomograms list --store ./store --json
    """
    from cosnet_index.store import Store
    from cosnet_index.store.tomograms import list_tomograms

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        rows = list_tomograms(store)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no tomogram is indexed yet (cosnet-index index)")
        return
    click.echo(f"{'name':<24} {'voxel A':>8} {'subtomograms':>12}  contrast   edge  source")
    for row in rows:
        contrast = "inverted" if row["invert_contrast"] else "as is"
        source = f"pick {row['pick_method']}" if row["pick_method"] else "coordinates"
        click.echo(
            f"{row['name']:<24} {row['voxel_size_angstrom']:>8.4g} {row['subtomograms']:>12}  "
            f"{contrast:<10} {row['edge'] or '-':<5} {source}"
        )


@tomograms.command("remove")
@store_options
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--force",
    is_flag=True,
    help="Also drop the support shots classes took from these tomograms' particles (a class "
    "left without any shot is deleted); without it such a class stops the removal.",
)
def remove_command(
    store_path: str, db_url: str | None, names: tuple[str, ...], force: bool
) -> None:
    """Remove tomograms: their catalog rows, shard parts and vectors in every index.

    The removal is one catalog transaction under the writer lock; a killed run leaves only
    derived files, which the next writer repairs (docs/store.md).

    Examples:

        cosnet-index tomograms remove --store ./store TS_01 TS_02

        cosnet-index tomograms remove --store ./store TS_01 --force
    """
    from cosnet_index.store import Store
    from cosnet_index.store.tomograms import remove_tomograms

    with Store.open(store_path, db_url=db_url) as store:
        summary = remove_tomograms(store, names, force=force)
    for line in summary.lines():
        click.echo(line)


@tomograms.command("rename")
@store_options
@click.argument("old")
@click.argument("new")
def rename_command(store_path: str, db_url: str | None, old: str, new: str) -> None:
    """Rename tomogram OLD to NEW (coordinate files then match it by NEW).

    Examples:

        cosnet-index tomograms rename --store ./store tomo_00 TS_01
    """
    from cosnet_index.store import Store
    from cosnet_index.store.tomograms import rename_tomogram

    with Store.open(store_path, db_url=db_url) as store:
        rename_tomogram(store, old, new)
    click.echo(f"renamed tomogram {old} to {new}")
