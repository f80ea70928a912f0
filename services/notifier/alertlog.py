"""The alert log: every alert raised, with its status, queryable and acknowledgeable.

It is the delivery state itself (:mod:`services.notifier.delivery`): the hash ``crmhub:delivery:<id>``
holds the alert, its sinks, the rate-limit decision and each sink's final state; the claim script adds
the alert id to three sorted sets by time raised (all alerts, per kind, per customer), so a query reads
one index and one pipeline of hashes. Kept as long as the delivery state (90 days). Redis was chosen over
SQL because that state must be written on the delivery path anyway (one Lua script, atomic with the
claim), and Redis runs with an append-only file; see docs/alerts.md.

Status, derived from the hash: ``acknowledged`` (someone acknowledged it), ``failed`` (a sink got a dead
letter), ``rate_limited`` (over its limit; on the topic only), ``delivered`` (every sink accepted it),
``raised`` (deliveries still under way).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson

from schemas.outputs import AlertKind

STATE_PREFIX = "crmhub:delivery:"
STATUS_FIELD = "sink:"
INDEX_ALL = "crmhub:alerts:index"
KIND_INDEX = "crmhub:alerts:kind:"
PROFILE_INDEX = "crmhub:alerts:profile:"
Status = Literal["raised", "delivered", "failed", "rate_limited", "acknowledged"]
PAGE = 200
MOST_SCANNED = 20_000  # a query with a rare status reads at most this many index entries

# KEYS: state hash. ARGV: count. The higher count wins; 0 when the alert is unknown.
_RAISE_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'count') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'count', ARGV[1])
end
return 1
"""
# KEYS: state hash. ARGV: time (ISO). The first acknowledgement stays; 0 when the alert is unknown.
_ACK = """
if redis.call('HEXISTS', KEYS[1], 'alert') == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'acknowledged_at', ARGV[1])
return 1
"""


def index_keys(kind: str, profile_id: str) -> list[str]:
    return [INDEX_ALL, KIND_INDEX + kind, PROFILE_INDEX + profile_id]


def status_of(fields: dict[str, str]) -> Status:
    sinks = [s for s in fields.get("sinks", "").split(",") if s]
    done = {k[len(STATUS_FIELD) :]: v for k, v in fields.items() if k.startswith(STATUS_FIELD)}
    if fields.get("acknowledged_at"):
        return "acknowledged"
    if "dead" in done.values():
        return "failed"
    if any(s not in done for s in sinks):
        return "raised"
    return "rate_limited" if fields.get("limited") == "1" else "delivered"


def record_of(fields: dict[str, str]) -> dict[str, Any]:
    """The alert as raised, with ``status``, ``deliveries`` (sink -> final state), ``acknowledged_at``; an
    alert raised again with a higher count (failed payments) shows that count in ``details.count``."""
    doc: dict[str, Any] = orjson.loads(fields["alert"])
    if "count" in fields:
        doc["details"] = {**doc["details"], "count": max(int(fields["count"]), doc["details"].get("count", 0))}
    doc["status"] = status_of(fields)
    doc["deliveries"] = {k[len(STATUS_FIELD) :]: v for k, v in fields.items() if k.startswith(STATUS_FIELD)}
    doc["acknowledged_at"] = fields.get("acknowledged_at")
    return doc


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


async def raise_count(redis: Any, alert_id: str, count: int) -> None:
    """An alert raised before, now with ``count`` causes: the log keeps the highest count (no re-delivery)."""
    await redis.eval(_RAISE_COUNT, 1, STATE_PREFIX + alert_id, count)


class AlertLog:
    """Reads and acknowledgements for the API (a synchronous Redis client)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def query(
        self, kind: str | None = None, status: str | None = None, customer: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first, up to ``limit`` alerts matching every filter given."""
        index = PROFILE_INDEX + customer if customer else KIND_INDEX + kind if kind else INDEX_ALL
        found: list[dict[str, Any]] = []
        for start in range(0, MOST_SCANNED, PAGE):
            ids = self.redis.zrevrange(index, start, start + PAGE - 1)
            pipe = self.redis.pipeline(transaction=False)
            for alert_id in ids:
                pipe.hgetall(STATE_PREFIX + alert_id.decode())
            for raw in pipe.execute() if ids else []:
                fields = _decoded(raw)
                if "alert" not in fields:
                    continue  # expired
                rec = record_of(fields)
                if (kind is None or rec["kind"] == kind) and (status is None or rec["status"] == status):
                    found.append(rec)
                    if len(found) == limit:
                        return found
            if len(ids) < PAGE:
                break
        return found

    def get(self, alert_id: str) -> dict[str, Any] | None:
        fields = _decoded(self.redis.hgetall(STATE_PREFIX + alert_id))
        return record_of(fields) if "alert" in fields else None

    def forget(self, profile_id: str) -> int:
        """Delete every alert of ``profile_id`` from the log (erasure); how many alerts there were."""
        ids = [i.decode() for i in self.redis.zrange(PROFILE_INDEX + profile_id, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        if ids:
            pipe.delete(*(STATE_PREFIX + i for i in ids))
            for index in (INDEX_ALL, *(KIND_INDEX + kind for kind in get_args(AlertKind))):
                pipe.zrem(index, *ids)
        pipe.delete(PROFILE_INDEX + profile_id)
        pipe.execute()
        return len(ids)

    def acknowledge(self, alert_id: str, at: str) -> dict[str, Any] | None:
        """Mark the alert acknowledged (the first time counts); None for an unknown id."""
        if not self.redis.eval(_ACK, 1, STATE_PREFIX + alert_id, at):
            return None
        return self.get(alert_id)
