"""`classes` group: add, list, remove, rename named support classes of a store."""

from __future__ import annotations

import json

import click

from cosnet_index.cli._options import (
    invert_contrast_option,
    json_option,
    parse_ids,
    set_option,
    store_options,
    subtomogram_ids_option,
)

__all__ = ["classes"]


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
) -> None:
    """Create class NAME from one or more examples (or add shots with --append).

    Examples:

        cosnet-index classes add --store ./store ribosome --subtomogram 17

        cosnet-index classes add --store ./store proteasome --subtomogram 3,8,21

        cosnet-index classes add --store ./store ribosome --append --at TS_01 312 188 96

        cosnet-index classes add --store ./store tric --mrc tric_box.mrc --set chaperones
    """
    from cosnet_index.classes import add_class
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
        )
    click.echo(
        f"class {made.name!r} in set {made.set_name!r}: {made.shots} shot(s) "
        f"(model {made.model_hash[:12]})"
    )


@classes.command("list")
@store_options
@set_option(every=True)
@json_option
def list_(store_path: str, db_url: str | None, set_name: str | None, as_json: bool) -> None:
    """List classes: set, name, shots, source, model.

    Examples:

        cosnet-index classes list --store ./store

        cosnet-index classes list --store ./store --set chaperones --json
    """
    from cosnet_index.classes import list_classes
    from cosnet_index.store import Store

    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        found = list_classes(store, set_name)
    rows = [
        {
            "set": c.set_name,
            "name": c.name,
            "shots": c.shots,
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
            f"{r['source']}" + (f"  ({r['description']})" if r["description"] else "")
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
