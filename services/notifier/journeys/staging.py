"""A table's writes held back while an input record is handled, written when its effects are out.

The journey runner carries out an input record's effects (messages claimed in the delivery outbox, profile
updates published) before the enrollments that follow from them are written: should the process die in
between, the record is read again and gives the same effects and message ids, which the outbox drops. To
claim all of a record's messages in one round trip rather than one per message, the record's writes wait
here until those effects are out; reads see them at once (a batch of events may move one customer
twice). Records are handled in batches (several records' effects in one round trip): each write keeps the
scope it was made in (faust's current event, which names the changelog partition it goes to) and is
carried out in it.

The table holds each value as its JSON (bytes): a small dict costs about a kilobyte of a process's memory,
its JSON a quarter of that, and the notifier holds several entries per customer (issue 20: 13 KB per
profile in 20 journeys). Values are decoded when read, encoded when written through."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import orjson

_GONE = object()  # a deletion held back


class Scope(Protocol):
    """Where a table write is made (``crmhub.core.faust_app.EventScope``: faust's current event)."""

    def current(self) -> object: ...

    def restore(self, token: Any) -> AbstractContextManager[None]: ...


class NoScope:
    """For tables that are plain dicts (unit tests)."""

    def current(self) -> object:
        return None

    def restore(self, token: Any) -> AbstractContextManager[None]:
        return nullcontext()


class Staged(MutableMapping[str, Any]):
    """``table`` (a faust table of JSON values: written only while a record of the key's partition is
    handled) with its writes and deletions held until :meth:`write_through`, each with its scope."""

    def __init__(self, table: MutableMapping[str, Any], scope: Scope | None = None) -> None:
        self.table, self.scope = table, scope or NoScope()
        self.held: dict[str, tuple[Any, object]] = {}  # key -> (value or _GONE, scope)

    def __getitem__(self, key: str) -> Any:
        value = self.held[key][0] if key in self.held else _decoded(self.table[key])
        if value is _GONE:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.held[key][0] if key in self.held else _decoded(self.table.get(key))
        return default if value is None or value is _GONE else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.held[key] = (value, self.scope.current())

    def __delitem__(self, key: str) -> None:
        self.held[key] = (_GONE, self.scope.current())

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if key not in self.held:
                yield key
        yield from (key for key, (value, _) in self.held.items() if value is not _GONE)

    def __len__(self) -> int:
        """The table's length corrected by the held writes: the tick asks for it while a batch is held,
        and counting by iteration cost a pass over every key (a million at the memory target)."""
        held = [(value is _GONE, key in self.table) for key, (value, _) in self.held.items()]
        new = sum(1 for gone, known in held if not gone and not known)
        return len(self.table) + new - sum(1 for gone, known in held if gone and known)

    def write_through(self) -> None:
        """The held writes into the table: the last write of each key."""
        held, self.held = self.held, {}
        for key, (value, scope) in held.items():
            with self.scope.restore(scope):
                if value is _GONE:
                    if key in self.table:
                        del self.table[key]
                else:
                    self.table[key] = _encoded(value)


def _encoded(value: Any) -> bytes:
    """``value``'s JSON in a bytes object of its own size: orjson returns its buffer, at least 4 KB,
    whatever the JSON's length (3.13), and a table keeps the object for as long as the key lives (issue 20:
    that took the notifier from 15 to 33 KB per profile)."""
    return memoryview(orjson.dumps(value)).tobytes()


def _decoded(raw: Any) -> Any:
    return orjson.loads(raw) if isinstance(raw, bytes) else raw  # None: no value
