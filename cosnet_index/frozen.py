"""The one serialiser of frozen configuration dataclasses: to a plain dict and back.

Every configuration saved next to what it describes (``SimulationConfig`` in a dataset's
``meta.json``, ``Imaging`` in a truth table, ``CRFParams`` beside the weights, ``CosNetConfig`` in
a checkpoint) goes through these two functions, so all of them refuse the same way a key they do
not know (a file written by a newer cosnet-index, or a typo) and all of them get their tuples back
from JSON lists. Imports nothing but the exception tree (foundation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from cosnet_index.errors import CosnetError, InputError

__all__ = ["frozen_from_dict", "frozen_to_dict"]

T = TypeVar("T")


def frozen_to_dict(config: Any, *, lists: bool = False) -> dict[str, Any]:
    """Every field of a dataclass instance as a plain dict (``dataclasses.asdict``).

    Args:
        config: a dataclass instance.
        lists: turn tuple values into lists (what JSON gives back); by default tuples stay.
    """
    values = dataclasses.asdict(config)
    if lists:
        values = {key: _lists(value) for key, value in values.items()}
    return values


def frozen_from_dict(
    cls: type[T],
    values: Mapping[str, Any],
    *,
    label: str | None = None,
    error: type[CosnetError] = InputError,
    hint: str | None = None,
) -> T:
    """Inverse of :func:`frozen_to_dict`: ``cls(**values)`` with tuple fields restored.

    A field annotated as a tuple (``tuple[float, ...]``, ``tuple[tuple[float, float], ...]``)
    gets tuples back at every level where JSON gave lists.

    Args:
        cls: the dataclass.
        values: its fields by name (any subset; the others keep their defaults).
        label: how the error names the fields (default ``"<ClassName> fields"``).
        error: the exception raised for unknown keys.
        hint: what to do about them (default: the list of known fields).

    Raises:
        InputError: (or ``error``) a key that is not a field of ``cls``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise error(
            f"unknown {label or cls.__name__ + ' fields'} {unknown}; "
            f"{hint or f'known: {sorted(fields)}'}"
        )
    kwargs = {
        key: _tuples(value) if _is_tuple_field(fields[key]) else value
        for key, value in values.items()
    }
    return cls(**kwargs)


def _is_tuple_field(field: dataclasses.Field) -> bool:
    annotation = field.type if isinstance(field.type, str) else repr(field.type)
    return annotation.replace(" ", "").startswith(("tuple[", "Tuple[", "typing.Tuple["))


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
