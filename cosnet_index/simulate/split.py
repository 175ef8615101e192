"""The fixed split of classes into training classes and held-out classes never trained on."""

from __future__ import annotations

from dataclasses import dataclass

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules.maps import procedural_name

__all__ = [
    "HELDOUT_PROCEDURAL_START",
    "HELDOUT_REAL",
    "LIBRARY_PRESETS",
    "TRAIN_REAL",
    "ClassSplit",
    "default_split",
    "heldout_classes",
    "resolve_classes",
    "training_classes",
]

HELDOUT_REAL: tuple[str, ...] = (
    "apoferritin_6z6u",
    "ruvab_7pbl",
    "enolase_3enl",
    "glua3_3o21",
    "casx_6ny1",
)
TRAIN_REAL: tuple[str, ...] = (
    "ribosome70S_4v5d",
    "spliceosome_3jb9",
    "mtor_4jsv",
    "cftr_6msm",
    "gltph_2nwl",
)
HELDOUT_PROCEDURAL_START = 100_000
# presets of the real-molecule library (library.py): (split, tier)
LIBRARY_PRESETS: dict[str, tuple[str | None, str | None]] = {
    "lib-train": ("train", None),
    "lib-heldout": ("heldout", None),
    "lib-heldout-small": ("heldout", "small-80-200kDa"),
    "lib-heldout-large": ("heldout", "large-2-5MDa"),
}


@dataclass(frozen=True)
class ClassSplit:
    """Class names for training and for evaluation on classes never seen in training."""

    train: tuple[str, ...]
    heldout: tuple[str, ...]


def default_split(n_train_procedural: int = 400, n_heldout_procedural: int = 24) -> ClassSplit:
    """Five real + ``n_train_procedural`` procedural training classes; five real + held-out ones.

    Training procedural ids are ``0 .. n_train_procedural - 1``; held-out procedural ids start at
    100000, so the two sets are disjoint by construction.

    Raises:
        InputError: negative counts or more than 100000 training classes.
    """
    if n_train_procedural < 0 or n_heldout_procedural < 0:
        raise InputError("class counts must be >= 0")
    if n_train_procedural > HELDOUT_PROCEDURAL_START:
        raise InputError(f"at most {HELDOUT_PROCEDURAL_START} procedural training classes")
    train = TRAIN_REAL + tuple(procedural_name(i) for i in range(n_train_procedural))
    heldout = HELDOUT_REAL + tuple(
        procedural_name(HELDOUT_PROCEDURAL_START + i) for i in range(n_heldout_procedural)
    )
    return ClassSplit(train=train, heldout=heldout)


def resolve_classes(spec: str) -> tuple[str, ...]:
    """Class names from a comma-separated spec of names and presets.

    Presets: ``real`` (the 10 shipped maps), ``train-real``, ``heldout-real``, ``heldout``
    (the default split's 5 real + 24 procedural held-out classes), the real-molecule library's
    ``lib-train``, ``lib-heldout``, ``lib-heldout-small`` (held-out, 80-200 kDa) and
    ``lib-heldout-large`` (held-out, 2-5 MDa), and ranges of procedural ids ``proc:A-B``
    (inclusive, e.g. ``proc:0-99``). Anything else must be a class name.

    Raises:
        InputError: an unknown name or a malformed range.
    """
    from cosnet_index.simulate.molecules.maps import REAL_CLASSES, is_class_name

    presets = {
        "real": REAL_CLASSES,
        "train-real": TRAIN_REAL,
        "heldout-real": HELDOUT_REAL,
        "heldout": default_split(0, 24).heldout,
    }
    names: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in presets:
            names += presets[token]
        elif token in LIBRARY_PRESETS:
            from cosnet_index.simulate.molecules.library import library_names

            names += library_names(*LIBRARY_PRESETS[token])
        elif token.startswith("proc:"):
            try:
                first, last = (int(v) for v in token[5:].split("-"))
            except ValueError:
                raise InputError(f"bad range {token!r}: write e.g. proc:0-99") from None
            if first < 0 or last < first:
                raise InputError(f"bad range {token!r}: need 0 <= A <= B in proc:A-B")
            names += [procedural_name(i) for i in range(first, last + 1)]
        elif is_class_name(token):
            names.append(token)
        else:
            raise InputError(
                f"unknown class {token!r}: use real class names, proc-<id>, proc:A-B, or a preset "
                "(real, train-real, heldout-real, heldout, lib-train, lib-heldout, "
                "lib-heldout-small, lib-heldout-large)"
            )
    if not names:
        raise InputError("no classes given: e.g. --classes heldout-real,proc:0-9")
    return tuple(dict.fromkeys(names))


def heldout_classes() -> frozenset[str]:
    """Every class kept out of training: the default split's held-out real maps and the library's
    held-out molecules (procedural ids from ``HELDOUT_PROCEDURAL_START`` are checked by number)."""
    from cosnet_index.simulate.molecules.library import library_names

    return frozenset(HELDOUT_REAL) | frozenset(library_names("heldout"))


def training_classes(spec: str) -> tuple[str, ...]:
    """:func:`resolve_classes` for training: the same spec, with every held-out class refused.

    Raises:
        InputError: an unknown name, or a class that evaluation keeps unseen.
    """
    names = resolve_classes(spec)
    heldout = heldout_classes()
    bad = [
        n
        for n in names
        if n in heldout or (n.startswith("proc-") and int(n[5:]) >= HELDOUT_PROCEDURAL_START)
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise InputError(
            f"{len(bad)} held-out classes in the training spec ({shown}): evaluation keeps them "
            "unseen; train on e.g. train-real,lib-train,proc:0-399"
        )
    return names
