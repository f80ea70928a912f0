"""What journeys did, as the notifier writes it and the API and the CLI read it.

Writer: the notifier's journey runner (``services/notifier/journeys/runner.py``). Readers: the API
(``GET /v1/journeys/{id}``, ``GET /v1/profiles/{id}/journeys``) and ``crmhub journeys show``.

- Per journey, a hash of integer counters: field ``<step>|<counter>`` (entered, waiting, sent, skipped:
  <why>, branch: then/else, exited: <reason>, converted, and revenue, kept in hundredths: exact).
- Per profile, a list of what happened to them in journeys, newest first, at most :data:`HISTORY_CAP`:
  ``{"at", "journey", "what": entered|sent|exited|converted, ...}``. Erasing the profile deletes it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

HISTORY_CAP = 200


def counts_key(journey_id: str) -> str:
    return f"crmhub:journey-counts:{journey_id}"


def history_key(profile_id: str) -> str:
    return f"crmhub:journey-history:{profile_id}"


REVENUE = "revenue"
CENT = Decimal("0.01")


def stored_amount(counter: str, amount: Decimal) -> int:
    """What the hash holds for ``amount`` of ``counter``: revenue in hundredths, the others as they are."""
    return int((amount / CENT).to_integral_value()) if counter == REVENUE else int(amount)


def step_counts(redis: Any, journey_id: str) -> dict[str, dict[str, Decimal]]:
    """The counters of a journey by step, then by counter (redis-py, synchronous)."""
    counts: dict[str, dict[str, Decimal]] = {}
    for field, value in redis.hgetall(counts_key(journey_id)).items():
        step, _, counter = field.decode().partition("|")
        amount = Decimal(value.decode())
        counts.setdefault(step, {})[counter] = amount * CENT if counter == REVENUE else amount
    return counts


def history(redis: Any, profile_id: str, limit: int = HISTORY_CAP) -> list[dict[str, Any]]:
    return [orjson.loads(doc) for doc in redis.lrange(history_key(profile_id), 0, limit - 1)]
