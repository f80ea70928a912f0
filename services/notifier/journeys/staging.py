"""A table's writes held back while an input record is handled, written when its effects are out.

The journey runner carries out an input record's effects (messages claimed in the delivery outbox, profile
updates published) before the enrollments that follow from them are written: should the process die in
between, the record is read again and gives the same effects and message ids, which the outbox drops. To
claim all of a record's messages in one round trip rather than one per message, the record's writes wait
here until those effects are out; reads see them at once (a batch of events may move one customer
twice)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

_GONE = object()  # a deletion held back


class Staged(MutableMapping[str, Any]):
    """``table`` (a faust table: written only while a record of the key's partition is handled) with its
    writes and deletions held until :meth:`write_through`."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.held: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.held[key] if key in self.held else self.table[key]
        if value is _GONE:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.held[key] if key in self.held else self.table.get(key)
        return default if value is None or value is _GONE else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.held[key] = value

    def __delitem__(self, key: str) -> None:
        self.held[key] = _GONE

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if key not in self.held:
                yield key
        yield from (key for key, value in self.held.items() if value is not _GONE)

    def __len__(self) -> int:
        return sum(1 for _ in self) if self.held else len(self.table)

    def write_through(self) -> None:
        """The held writes into the table: the last write of each key."""
        held, self.held = self.held, {}
        for key, value in held.items():
            if value is _GONE:
                if key in self.table:
                    del self.table[key]
            else:
                self.table[key] = value
