"""Name -> component lookups shared by the flag-selected registries."""

from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(table: Mapping[str, T], kind: str, name: str) -> T:
    """``table[name]``; an unknown name raises ValueError listing the valid ones."""
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"Unknown {kind} {name!r}; valid: {sorted(table)}") from None
