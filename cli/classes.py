"""`classes` group: add, list, remove, rename, set-volume of named support classes of a store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from cosnet_index.cli._options import (
    invert_contrast_option,
    json_option,
    parse_ids,
    seed_option,
    set_option,
    store_options,
    subtomogram_ids_option,
    threads_option,
)

__all__ = ["classes"]


def reference_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--map``/``--model`` and how to image them (``classes add`` only)."""
    options = [
        click.option(
            "--map",
            "map_path",
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            help="A density map (MRC, molecule positive, e.g. from EMDB) to make the class from.",
        ),
        click.option(
            "--model",
            "model_path",
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            help="An atomic model (PDB/mmCIF; needs the pdb extra) to make the class from.",
        ),
        click.option(
            "--map-voxel-size",
            type=float,
            default=None,
            help="The map's voxel size in angstrom (default: its header's).",
        ),
        click.option(
            "--contour",
            type=float,
            default=None,
            help="The map's contour level in its own units (e.g. EMDB's recommended one): the "
            "class volume is the map's volume above it (default: estimated from the map).",
        ),
        click.option(
            "--defocus",
            type=float,
            default=-4.0,
            show_default=True,
            help="Reference imaging: defocus in micrometres (negative: underfocus).",
        ),
        click.option(
            "--tilt-range",
            type=(float, float),
            default=(-60.0, 60.0),
            show_default=True,
            metavar="MIN MAX",
            help="Reference imaging: tilt range in degrees (the missing wedge).",
        ),
        click.option(
            "--voltage", type=float, default=300.0, show_default=True, help="Reference: kV."
        ),
        click.option("--phase-plate", is_flag=True, help="Reference: Volta phase plate data."),
        click.option(
            "--phase-flipped",
            is_flag=True,
            help="Reference: the tomograms were reconstructed from phase-flipped (CTF-corrected) "
            "tilts.",
        ),
        click.option(
            "--resolution",
            type=float,
            default=4.0,
            show_default=True,
            help="Reference: low-pass the map to this resolution (nm).",
        ),
        click.option(
            "--orientations",
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            help="Reference: random orientations imaged and averaged into the class vector.",
        ),
        click.option(
            "--snr",
            type=float,
            default=float("inf"),
            show_default=True,
            help="Reference: noise added to each imaged orientation (inf: none).",
        ),
        seed_option("Reference: seed of the orientations (and noise)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("classes")
def classes() -> None:
    """Named support classes: one example (one-shot) or a few (few-shot) per class.

    Classes store their support vectors; adding, renaming or removing them never re-embeds the
    collection.

    Examples:

        cosnet-index classes add --store ./store ribosome --subtomogram 17

        cosnet-index classes list --store ./store
    """


@classes.command("add")
@threads_option
@store_options
@click.argument("name")
@subtomogram_ids_option(
    "Stored subtomogram(s) as examples (repeatable; vectors are copied, not recomputed)."
)
@click.option(
    "--mrc",
    "mrc_paths",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A cubic MRC box of the structure (repeatable); embedded with the store's model.",
)
@click.option(
    "--at",
    "at",
    multiple=True,
    nargs=4,
    type=(str, float, float, float),
    metavar="TOMO X Y Z",
    help="A particle position in voxels of an indexed tomogram (name) or an MRC file (repeatable).",
)
@set_option()
@click.option("--description", default="", help="Free text shown by `classes list`.")
@click.option("--append", is_flag=True, help="Add the examples as more shots of an existing class.")
@invert_contrast_option("Negate boxes of files the store did not index (bright molecules).")
@click.option(
    "--mass-kda",
    type=float,
    default=None,
    help="The molecule's mass in kDa: the class volume (mass / 0.81 Da/A^3), segment's mask "
    "prior (beats the volume of --map or --model).",
)
@reference_options
def add(
    store_path: str,
    db_url: str | None,
    name: str,
    subtomograms: tuple[str, ...],
    mrc_paths: tuple[str, ...],
    at: tuple[tuple[str, float, float, float], ...],
    set_name: str,
    description: str,
    append: bool,
    invert_contrast: bool,
    mass_kda: float | None,
    map_path: str | None,
    model_path: str | None,
    map_voxel_size: float | None,
    contour: float | None,
    defocus: float,
    tilt_range: tuple[float, float],
    voltage: float,
    phase_plate: bool,
    phase_flipped: bool,
    resolution: float,
    orientations: int,
    snr: float,
    seed: int,
) -> None:
    """Create class NAME from one or more examples (or add shots with --append).

    --map (a density map, molecule positive) or --model (PDB/mmCIF, needs the pdb extra) makes
    the class from a reference: resampled to the store's voxel size, imaged like the collection
    (--defocus, --tilt-range, ...) in --orientations random orientations, whose vectors are
    averaged into one shot; `classes list` shows where it came from.

    The class records its molecular volume when it can know it: from --mass-kda, from --map
    (the volume above --contour, or above an estimated contour), or from --model (the sum of
    its atomic masses). `segment` then keeps each hit's most probable voxels up to that volume
    (docs/segmentation.md); `classes set-volume` adds or corrects it later.

    Examples:

        cosnet-index classes add --store ./store ribosome --subtomogram 17

        cosnet-index classes add --store ./store proteasome --subtomogram 3,8,21

        cosnet-index classes add --store ./store ribosome --append --at TS_01 312 188 96

        cosnet-index classes add --store ./store tric --mrc tric_box.mrc --set chaperones

        cosnet-index classes add --store ./store apoferritin --map emd_1234.mrc --defocus -3

        cosnet-index classes add --store ./store ribosome --model 4v6x.cif --tilt-range -50 50

        cosnet-index classes add --store ./store tric --subtomogram 12 --mass-kda 960

        cosnet-index classes add --store ./store apoferritin --map emd_1234.mrc --contour 0.02
    """
    from cosnet_index.classes import ReferenceImaging, add_class, describe_volume
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url) as store:
        made = add_class(
            store,
            name,
            subtomogram_ids=parse_ids(subtomograms),
            mrc_paths=list(mrc_paths),
            at=list(at),
            set_name=set_name,
            description=description,
            append=append,
            invert_contrast=invert_contrast,
            reference_map=map_path,
            reference_model=model_path,
            map_voxel_size_angstrom=map_voxel_size,
            mass_kda=mass_kda,
            contour=contour,
            reference_imaging=ReferenceImaging(
                defocus_um=defocus,
                tilt_min_deg=tilt_range[0],
                tilt_max_deg=tilt_range[1],
                voltage_kv=voltage,
                phase_plate=phase_plate,
                phase_flip=phase_flipped,
                resolution_nm=resolution,
                orientations=orientations,
                snr=snr,
                seed=seed,
            ),
        )
    click.echo(
        f"class {made.name!r} in set {made.set_name!r}: {made.shots} shot(s) "
        f"(model {made.model_hash[:12]}), volume {describe_volume(made.volume)}"
    )


@classes.command("list")
@store_options
@set_option(every=True)
@json_option
def list_(store_path: str, db_url: str | None, set_name: str | None, as_json: bool) -> None:
    """List classes: set, name, shots, molecular volume (and its source), source, model.

    Examples:

        cosnet-index classes list --store ./store

        cosnet-index classes list --store ./store --set chaperones --json
    """
    from cosnet_index.classes import describe_volume, list_classes
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        found = list_classes(store, set_name)
    rows = [
        {
            "set": c.set_name,
            "name": c.name,
            "shots": c.shots,
            "volume_nm3": None if c.volume is None else round(c.volume.volume_nm3, 1),
            "volume_source": None if c.volume is None else c.volume.source,
            "mass_kda": None if c.volume is None else c.volume.mass_kda,
            "volume_note": None if c.volume is None else c.volume.note,
            "volume": describe_volume(c.volume),
            "source": "; ".join(c.sources),
            "model": c.model_hash[:12],
            "description": c.description,
            "created": c.created_at.isoformat(timespec="seconds"),
        }
        for c in found
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no classes; add one with `cosnet-index classes add`")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(
            f"{r['set']:<12} {r['name']:<{width}}  {r['shots']:>3} shot(s)  model {r['model']}  "
            f"volume {r['volume']}  {r['source']}"
            + (f"  ({r['description']})" if r["description"] else "")
        )


@classes.command("remove")
@store_options
@click.argument("name")
@set_option()
def remove(store_path: str, db_url: str | None, name: str, set_name: str) -> None:
    """Remove class NAME and its support vectors (stored embeddings stay).

    Examples:

        cosnet-index classes remove --store ./store ribosome
    """
    from cosnet_index.classes import remove_class
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url) as store:
        remove_class(store, name, set_name=set_name)
    click.echo(f"removed class {name.strip()!r} from set {set_name!r}")


@classes.command("rename")
@store_options
@click.argument("old")
@click.argument("new")
@set_option()
def rename(store_path: str, db_url: str | None, old: str, new: str, set_name: str) -> None:
    """Rename class OLD to NEW.

    Examples:

        cosnet-index classes rename --store ./store blob-7 proteasome
    """
    from cosnet_index.classes import rename_class
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url) as store:
        made = rename_class(store, old, new, set_name=set_name)
    click.echo(f"renamed {old.strip()!r} to {made.name!r} in set {set_name!r}")


@classes.command("set-volume")
@store_options
@click.argument("name")
@click.option(
    "--mass-kda",
    type=float,
    default=None,
    help="The molecule's mass in kDa: volume = mass / 0.81 Da/A^3.",
)
@click.option("--volume-nm3", type=float, default=None, help="The molecular volume in nm^3.")
@click.option(
    "--clear", is_flag=True, help="Forget the volume (segment then thresholds at p > 0.5)."
)
@set_option()
def set_volume(
    store_path: str,
    db_url: str | None,
    name: str,
    mass_kda: float | None,
    volume_nm3: float | None,
    clear: bool,
    set_name: str,
) -> None:
    """Add or correct the molecular volume of class NAME (segment's mask prior).

    `segment` keeps each hit's most probable voxels up to its class's volume; give the mass
    (--mass-kda) or the volume (--volume-nm3) of a class that has none (one made from particles)
    or a wrong one. The class's vectors are untouched.

    Examples:

        cosnet-index classes set-volume --store ./store ribosome --mass-kda 2300

        cosnet-index classes set-volume --store ./store blob-7 --volume-nm3 180

        cosnet-index classes set-volume --store ./store blob-7 --clear
    """
    from cosnet_index.classes import describe_volume, set_class_volume
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url) as store:
        made = set_class_volume(
            store, name, mass_kda=mass_kda, volume_nm3=volume_nm3, clear=clear, set_name=set_name
        )
    click.echo(
        f"class {made.name!r} in set {made.set_name!r}: volume {describe_volume(made.volume)}"
    )
