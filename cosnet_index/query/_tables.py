"""Result tables (Parquet, documented schema) and RELION STAR export.

Classification table (``cosnet-index classify --out result.parquet``), one row per subtomogram:

=================  =======  ==================================================================
column             type     meaning
=================  =======  ==================================================================
subtomogram_id     int64    id in the store (= FAISS id)
tomogram           string   tomogram name (``rlnTomoName`` or the MRC file's stem)
x, y, z            float64  particle centre in voxels of that tomogram, as indexed
class              string   best class, or ``unknown`` when ``probability < min_prob``
probability        float32  best class probability through the head
margin             float32  best minus second-best class probability (= best with 1 class)
passes             bool     the row is a match: ``class`` is not ``unknown``
is_support         bool     the particle is one of the set's support shots (a class's own
                            example, a match by construction)
p_<class>          float32  probability against each class, one column per class
=================  =======  ==================================================================

Search table (``cosnet-index search --out hits.parquet``): ``rank`` (int64, 1 = best),
``subtomogram_id``, ``tomogram``, ``x``, ``y``, ``z``, ``class`` (the searched class),
``probability``, ``distance`` (float32 L1 distance to the nearest shot; NaN with ``mean``),
``passes`` (bool: classify's open-set rule would give the hit this class: its probability is at
least the pass threshold and no other class of the set is more probable), ``is_support``.

Both files carry the query's provenance as JSON in the Parquet key-value metadata under
``cosnet_index`` (kind, model hash, classes, min_prob, reduce, created).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write
from cosnet_index.query._scores import UNKNOWN, Classification
from cosnet_index.query._search import Hits

__all__ = [
    "META_KEY",
    "PROB_PREFIX",
    "SUPPORT_RADIUS_VOXELS",
    "check_same_model",
    "classification_table",
    "export_star",
    "hits_table",
    "mark_support",
    "read_table",
    "write_table",
]

META_KEY = b"cosnet_index"
PROB_PREFIX = "p_"
_LOCATION = ["tomogram", "x", "y", "z"]


def _locations(ids: np.ndarray, locations: pd.DataFrame | None) -> pd.DataFrame:
    """tomogram, x, y, z of ``ids`` from a table with columns id, tomogram, x, y, z."""
    if locations is None:
        return pd.DataFrame(
            {
                "tomogram": pd.Series([None] * len(ids), dtype="string"),
                **{c: np.full(len(ids), np.nan) for c in "xyz"},
            }
        )
    loc = locations.set_index("id")[_LOCATION]
    missing = ~pd.Index(ids).isin(loc.index)
    if missing.any():
        raise InputError(
            f"{int(missing.sum())} ids have no location (first {ids[missing][:3].tolist()}); "
            "run `cosnet-index check` on the store"
        )
    out = loc.loc[ids].reset_index(drop=True)
    out["tomogram"] = out["tomogram"].astype("string")
    return out.astype({c: "float64" for c in "xyz"})


SUPPORT_RADIUS_VOXELS = 0.5
"""A support shot given as a position (``classes add --at``) marks the particles stored within
this many voxels of it on every axis (the rule by which ``--at`` reuses a stored vector)."""


def mark_support(df: pd.DataFrame, support: Sequence[Any]) -> pd.DataFrame:
    """``df`` with a boolean ``is_support`` column: the row is a support shot of ``support``.

    Args:
        df: a result table with ``subtomogram_id, tomogram, x, y, z``.
        support: :class:`~cosnet_index.classes.SupportClass` es (their ``subtomogram_ids`` and
            ``positions``).
    """
    ids = {i for c in support for i in c.subtomogram_ids}
    flags = df["subtomogram_id"].isin(list(ids)).to_numpy(dtype=bool).copy()  # pandas 3: read-only
    for c in support:
        for tomogram, *xyz in c.positions:
            same = (df["tomogram"] == tomogram).to_numpy(dtype=bool)
            near = (
                np.abs(df[["x", "y", "z"]].to_numpy(np.float64) - np.asarray(xyz))
                <= SUPPORT_RADIUS_VOXELS
            ).all(axis=1)
            flags |= same & near
    df = df.copy()
    df["is_support"] = flags
    return df


def classification_table(
    result: Classification, ids: np.ndarray, locations: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The classification table (schema in this module's docstring) for vectors ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) != len(result.labels):
        raise InputError(f"{len(ids)} ids for {len(result.labels)} classified vectors")
    df = pd.DataFrame({"subtomogram_id": ids})
    df = pd.concat([df, _locations(ids, locations)], axis=1)
    df["class"] = pd.Series(result.labels, dtype="string")
    df["probability"] = result.probability.astype(np.float32)
    df["margin"] = result.margin.astype(np.float32)
    df["passes"] = result.best >= 0
    df["is_support"] = False  # the store's queries mark them (mark_support)
    for j, name in enumerate(result.class_names):
        df[PROB_PREFIX + name] = result.scores[:, j].astype(np.float32)
    return df


def hits_table(hits: Hits, class_name: str, locations: pd.DataFrame | None = None) -> pd.DataFrame:
    """The search table (schema in this module's docstring)."""
    df = pd.DataFrame(
        {"rank": np.arange(1, len(hits) + 1, dtype=np.int64), "subtomogram_id": hits.ids}
    )
    df = pd.concat([df, _locations(hits.ids, locations)], axis=1)
    df["class"] = pd.Series([class_name] * len(hits), dtype="string")
    df["probability"] = hits.probability.astype(np.float32)
    df["distance"] = hits.distance.astype(np.float32)
    df["passes"] = True  # the store's search applies the open-set rule
    df["is_support"] = False
    return df


def write_table(df: pd.DataFrame, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``df`` to Parquet with ``metadata`` (JSON) attached; atomic (temp file + rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix != ".parquet":
        raise InputError(f"result file {path} must end in .parquet; rename it")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(dict(metadata), sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A result table and its provenance metadata (empty dict if none)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(f"result file {path} not found; write one with `cosnet-index classify`")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(
            f"cannot read {path} as Parquet ({exc}); give a classify/search result"
        ) from exc
    raw = (table.schema.metadata or {}).get(META_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


def check_same_model(meta: Mapping[str, Any], model_hash: str, what: str = "the result") -> None:
    """Refuse a table whose provenance names another model than ``model_hash``.

    Raises:
        InputError: the table was made with another model (tables without provenance pass).
    """
    made_by = meta.get("model_hash")
    if made_by and made_by != model_hash:
        raise InputError(
            f"{what} came from model {made_by[:12]}, the store holds {model_hash[:12]}: "
            f"give the store {what} came from"
        )


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _file_convention(
    tomograms: Sequence[str], geometry: Mapping[str, Mapping[str, Any]] | None, asked: str | None
) -> str:
    """The one convention of an exported file: ``asked``, else the one the tomograms came in."""
    from cosnet_index.geometry import COORDINATE_CONVENTIONS

    if asked is not None:
        if asked not in COORDINATE_CONVENTIONS:
            raise InputError(
                f"--convention must be one of {', '.join(COORDINATE_CONVENTIONS)}, got {asked!r}"
            )
        convention = asked
    else:
        recorded = {
            str((geometry or {}).get(name, {}).get("convention") or "voxels") for name in tomograms
        }
        if len(recorded) > 1:
            raise InputError(
                f"the result's tomograms came in different coordinate conventions "
                f"({', '.join(sorted(recorded))}); one STAR file holds one: choose it with "
                "--convention relion4|relion5|voxels"
            )
        convention = recorded.pop() if recorded else "voxels"
    if convention != "voxels":
        missing = [n for n in tomograms if n not in (geometry or {})]
        if missing:
            raise InputError(
                f"the result has no geometry for tomograms {missing[:3]} (a table written "
                f"before cosnet-index recorded it), which {convention} coordinates need; "
                "classify or search again, or export with --convention voxels"
            )
    return convention


def _optics_groups(
    tomograms: Sequence[str], geometry: Mapping[str, Mapping[str, Any]], convention: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The optics block (the rows the particles came with, renumbered where two files clash)
    and each tomogram's optics group."""
    rows: list[dict[str, Any]] = []
    group_of: dict[str, int] = {}
    for name in tomograms:
        info = geometry[name]
        pixel = info.get("pixel_size_angstrom") or info["voxel_size_angstrom"]
        recorded = [dict(r) for r in info.get("optics") or []]
        if convention == "relion4":
            same = [r for r in recorded if r.get("rlnTomoTiltSeriesPixelSize") == pixel]
            row = same[0] if same else {"rlnTomoTiltSeriesPixelSize": float(pixel)}
        else:  # RELION 5 reads the pixel sizes from the optics block
            row = dict(recorded[0]) if recorded else {}
            row.setdefault("rlnTomoTiltSeriesPixelSize", float(pixel))
            row.setdefault("rlnImagePixelSize", float(info["voxel_size_angstrom"]))
        content = {k: v for k, v in row.items() if k != "rlnOpticsGroup"}
        match = next((r for r in rows if {k: v for k, v in r.items() if k != "rlnOpticsGroup"}
                      == content), None)  # fmt: skip
        if match is None:
            taken = {int(r["rlnOpticsGroup"]) for r in rows}
            number = int(row.get("rlnOpticsGroup") or 1)
            if number in taken:
                number = max(taken) + 1
            match = {"rlnOpticsGroup": number, **content}
            match.setdefault("rlnOpticsGroupName", f"opticsGroup{number}")
            rows.append(match)
        group_of[name] = int(match["rlnOpticsGroup"])
    optics = pd.DataFrame(rows)
    front = ["rlnOpticsGroup", "rlnOpticsGroupName"]
    return optics[front + [c for c in optics.columns if c not in front]], group_of


def export_star(
    result: pd.DataFrame,
    out_dir: str | Path,
    classes: Sequence[str] | None = None,
    min_prob: float | None = None,
    include_unknown: bool = False,
    overwrite: bool = False,
    *,
    geometry: Mapping[str, Mapping[str, Any]] | None = None,
    convention: str | None = None,
) -> list[Path]:
    """One RELION particle STAR file per class from a classify or search table.

    Each file ``<out_dir>/<class>.star`` writes the positions in the convention the particles
    came in (``geometry``, recorded at ``index``) or the one asked for (``convention``):

    - ``voxels``: ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` in voxels of the named tomogram
      (RELION 3 / Warp; what CSV and Parquet picks give);
    - ``relion4``: a ``data_optics`` block (the one the particles came with, or one with
      ``rlnTomoTiltSeriesPixelSize``) and ``rlnCoordinateX/Y/Z`` in tilt-series pixels,
      ``rlnOpticsGroup``;
    - ``relion5``: ``rlnCenteredCoordinateX/Y/ZAngst``, angstrom from the tomogram centre,
      and a ``data_optics`` block with the pixel sizes RELION 5 reads
      (``rlnTomoTiltSeriesPixelSize``: the recorded tilt-series pixel, else the tomogram's
      voxel; ``rlnImagePixelSize``: the tomogram's voxel), kept where the particles had them;

    then ``rlnClassNumber`` (1-based, in the order of ``classes`` or of first appearance) and
    ``rlnAutopickFigureOfMerit`` (the class probability). Indexing the file again gives the same
    positions (tested to 0.01 voxel).

    Args:
        result: a table with columns tomogram, x, y, z, class, probability.
        out_dir: folder to write into (created).
        classes: only these classes (default: every class present).
        min_prob: only rows with at least this probability.
        include_unknown: also write ``unknown.star`` (beside ``classes`` when they are given).
        overwrite: replace existing files (default: refuse).
        geometry: tomogram name -> ``{"convention", "pixel_size_angstrom", "optics",
            "voxel_size_angstrom", "shape_zyx"}`` (the result's metadata ``tomogram_geometry``, from
            :meth:`~cosnet_index.store.Store.tomogram_geometry`); None: plain voxels.
        convention: ``relion4``, ``relion5`` or ``voxels`` instead of the recorded one.

    Returns:
        The written paths.

    Raises:
        InputError: missing columns, no location, tomograms of several conventions without
            ``convention``, a convention the geometry cannot give, or an existing file without
            ``overwrite``.
    """
    import starfile

    from cosnet_index.geometry import voxels_to_table

    need = {"tomogram", "x", "y", "z", "class", "probability"}
    if not need <= set(result.columns):
        raise InputError(
            f"result table lacks columns {sorted(need - set(result.columns))}; "
            "give a table written by `cosnet-index classify` or `search`"
        )
    if result["tomogram"].isna().any():
        raise InputError("some rows have no tomogram name; classify through a store to get them")
    tomograms = [str(t) for t in pd.unique(result["tomogram"].astype(str))]
    kind = _file_convention(tomograms, geometry, convention)
    optics, group_of = (None, {})
    if kind != "voxels":
        assert geometry is not None
        optics, group_of = _optics_groups(tomograms, geometry, kind)
    df = result if min_prob is None else result[result["probability"] >= min_prob]
    names = list(classes) if classes is not None else list(pd.unique(result["class"].astype(str)))
    if not include_unknown:
        names = [c for c in names if c != UNKNOWN]
    elif UNKNOWN not in names and (result["class"].astype(str) == UNKNOWN).any():
        names.append(UNKNOWN)  # asked for with --classes a,b --include-unknown
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = {
        "voxels": ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"),
        "relion4": ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"),
        "relion5": (
            "rlnCenteredCoordinateXAngst",
            "rlnCenteredCoordinateYAngst",
            "rlnCenteredCoordinateZAngst",
        ),
    }[kind]
    paths = []
    for number, name in enumerate(names, start=1):
        rows = df[df["class"] == name]
        path = out_dir / f"{_SAFE.sub('_', name)}.star"
        if path.exists() and not overwrite:
            raise InputError(f"{path} exists; pass --overwrite or choose another --out folder")
        tomo = rows["tomogram"].astype(str).to_numpy()
        xyz = rows[["x", "y", "z"]].to_numpy(np.float64)
        out = np.empty_like(xyz)
        for t in pd.unique(tomo):
            at = tomo == t
            info = (geometry or {}).get(t, {})
            out[at] = voxels_to_table(
                xyz[at],
                kind,
                voxel_size_angstrom=float(info.get("voxel_size_angstrom") or 1.0),
                coordinate_pixel_size_angstrom=info.get("pixel_size_angstrom")
                or info.get("voxel_size_angstrom"),
                shape_zyx=tuple(info["shape_zyx"]) if "shape_zyx" in info else None,
            )
        block = pd.DataFrame({"rlnTomoName": tomo, **{c: out[:, i] for i, c in enumerate(columns)}})
        if optics is not None:
            block["rlnOpticsGroup"] = [group_of[t] for t in tomo]
        block["rlnClassNumber"] = np.full(len(rows), number, dtype=np.int64)
        block["rlnAutopickFigureOfMerit"] = rows["probability"].to_numpy(np.float64)
        data = {"particles": block} if optics is None else {"optics": optics, "particles": block}
        with atomic_write(path) as tmp:  # a full disk: WriteError, no half file
            starfile.write(data, tmp, float_format="%.6f")
        paths.append(path)
    return paths
