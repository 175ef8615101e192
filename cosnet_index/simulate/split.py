"""The fixed split of classes into training classes and held-out classes never trained on."""

from __future__ import annotations

from dataclasses import dataclass

from cosnet_index.errors import InputError
from cosnet_index.simulate.maps import procedural_name

__all__ = [
    "HELDOUT_PROCEDURAL_START",
    "HELDOUT_REAL",
    "TRAIN_REAL",
    "ClassSplit",
    "default_split",
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
