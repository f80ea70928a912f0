"""The journey engine's wiring in the notifier: the inputs it reads, the tables it keeps, its due times.

Inputs, all keyed (and so partitioned) by profile id like the tables:

- ``crm.events.v1``: an event may trigger a journey, convert an enrollment (its goal) or end it (an exit);
- ``crm.segments.v1``: a segment entered or exited may trigger a journey;
- ``crm.profile-changes.v1``: a changed profile's dates schedule its date-triggered journeys (no scans),
  and what its profile and items triggers find there (a cart, an open complaint) may enter it: the change
  is the customer for that call (not read again; the segments they are in are read when a wait ends);
- ``crm.erasures.v1``: an erased profile, whose entries leave the tables;
- ``crmhub-journeys-due``: the keys of entries that have come due, sent by :meth:`JourneyRunner.tick` to
  the partition the entries live on (faust writes a table while a record of its partition is processed).

Tables (faust, changelogged, so a restarted notifier has them back):

- ``journeys``: per :func:`~services.notifier.journeys.engine.state_key` an enrollment
  (``Enrollment.to_json()``), and per ``@date:<journey>:<profile>`` a scheduled date occurrence; each with
  ``due`` (epoch seconds: when its wait ends, or for an ended enrollment when it is forgotten, see
  :func:`~services.notifier.journeys.entries.due_at`; None: nothing due) and the ``partition`` it was
  written on;
- ``journey-customers``: per profile, the keys of its enrollments that may still act (active, or in their
  goal's window) and when its messages went out (the frequency cap).

Input records are handled in batches. A batch's effects are carried out before the enrollments that
follow from them are written: should the process die in between, the inputs are read again, the engine
gives the same effects and message ids, and the delivery outbox drops the repeats. So the tables' writes
are held (``staging.py``) while a batch is handled, and its messages, profile updates, counters and
histories go out together (:meth:`Outputs.carry_out`: the messages claimed in one Redis round trip); then
the writes. A crash may count a batch's counters twice, or not at all; messages go out once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from crmhub.core.conditions.fields import LazyView
from crmhub.core.topics import ERASURES, EVENTS, PROFILE_CHANGES, SEGMENTS
from services.notifier.customers import Fresh
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.effects import Effect, Schedule, Send, UpdateProfile
from services.notifier.journeys.engine import may_enter, on_due, on_event, on_trigger, state_key
from services.notifier.journeys.entries import customer_of, due_at, is_due, may_act, same, sent_of
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.outputs import Held, to_alert, update_event
from services.notifier.journeys.routing import JourneyIndex, event_occurrence_of
from services.notifier.journeys.staging import NoScope, Scope, Staged
from services.notifier.journeys.state import Enrollment
from services.notifier.journeys.triggers import (
    DateTrigger,
    ItemsTrigger,
    Occurrence,
    ProfileTrigger,
    date_occurrence,
    is_stale,
    profile_occurrences,
    segment_change,
)
from services.notifier.timers import DueIndex

log = logging.getLogger("crmhub.notifier.journeys")
JOURNEYS_DUE = "crmhub-journeys-due"
ENROLLMENTS, CUSTOMERS = "journeys", "journey-customers"
DATE_PREFIX = "@date:"  # journey ids are a-z, 0-9, _ and -: no state key starts with it
SENT_KEPT = timedelta(days=31)  # the longest cap period a policy may name
RESEND_S = 10.0

ReadFresh = Callable[[Sequence[str]], Awaitable[dict[str, Fresh]]]
SendDue = Callable[[int, bytes], Awaitable[None]]
Table = MutableMapping[str, Any]
Journeys = tuple[Journey, ...]


class Outputs(Protocol):
    async def carry_out(self, held: Held) -> None:
        """A batch's effects: messages, profile updates, counters and histories."""


@dataclass(frozen=True)
class Input:
    """A record of an input, decoded, and the scope it is handled in (``staging.Scope``: faust's event)."""

    topic: str
    partition: int
    doc: Any
    scope: object = None


@dataclass
class _Call:  # one engine call's context: where its writes go and what it read
    partition: int
    customer: Customer
    now: datetime


class JourneyRunner:
    def __init__(
        self,
        journeys: Iterable[Journey],
        tables: Mapping[str, Table],
        read_fresh: ReadFresh,
        outputs: Outputs,
        send_due: SendDue,
        clock: Callable[[], datetime],
        scope: Scope | None = None,
    ) -> None:
        self.index = JourneyIndex.of(())
        self.use(journeys)  # logs the journeys in force from the start
        self.scope = scope or NoScope()
        self.enrollments = Staged(tables[ENROLLMENTS], self.scope)
        self.customers = Staged(tables[CUSTOMERS], self.scope)
        self.read_fresh, self.outputs, self.send_due, self.clock = read_fresh, outputs, send_due, clock
        self.due_index = DueIndex()
        self.held = Held()  # the effects of the records being handled
        self.fresh: dict[str, Fresh] = {}  # the customers read for them

    def use(self, journeys: Iterable[Journey]) -> None:
        """The journeys in force from now on (a journey made, changed, paused or deleted)."""
        index = JourneyIndex.of(journeys)
        if index.signature() != self.index.signature():
            log.info("journeys in force: %s", ", ".join(f"{j} v{v} {s}" for j, v, s in index.signature()) or "none")
            self.index = index

    async def handle(self, inputs: Sequence[Input]) -> None:
        """Records of the inputs, in order: the customers they may act on read in one round trip, their
        effects carried out together, then their writes (or, should that fail, none of them: the records
        are handled again)."""
        try:
            if wanted := set().union(*(self.wanted(record) for record in inputs)):
                await self.read(wanted)
            for record in inputs:
                with self.scope.restore(record.scope):
                    await self.route(record.topic, record.partition, record.doc)
            if self.held:
                await self.outputs.carry_out(self.held)
        except BaseException:
            self.enrollments.held.clear()
            self.customers.held.clear()
            raise
        finally:
            self.held, self.fresh = Held(), {}
        self.enrollments.write_through()
        self.customers.write_through()

    def wanted(self, record: Input) -> set[str]:
        """The customers a record may act on (read for all the records at once; one an earlier record
        makes able to act is read when it does)."""
        now = self.clock()
        if record.topic == EVENTS and self.index.reads_events():
            events = [event for doc in record.doc if (event := self.relevant(doc))]
            return {pid for pid, occ, triggered, _ in events if self.entering(pid, triggered, occ, now)}
        if record.topic == SEGMENTS and (entry := self.segment_entry(record.doc)):
            return {record.doc["profile_id"]} if self.entering(record.doc["profile_id"], *entry, now) else set()
        if record.topic == JOURNEYS_DUE:
            docs = [doc for key in record.doc if (doc := self.enrollments.get(key)) and is_due(doc, now)]
            return {doc["profile_id"] for doc in docs if doc.get("ended") is None}
        return set()

    async def read(self, pids: Iterable[str]) -> dict[str, Fresh]:
        """The customers, read once for the records being handled."""
        if missing := sorted({pid for pid in pids if pid not in self.fresh}):
            self.fresh.update(await self.read_fresh(missing))
        return self.fresh

    async def route(self, topic: str, partition: int, doc: Any) -> None:
        if topic == JOURNEYS_DUE:
            await self.fire(partition, doc)
        elif topic == EVENTS and self.index.reads_events():
            await self.on_events(partition, doc)
        elif topic == SEGMENTS and self.index.segments:
            await self.on_segment(partition, doc)
        elif topic == PROFILE_CHANGES and (self.index.dated or self.index.profiled):
            for change in doc:
                self.schedule_dates(partition, change)
                await self.on_profile(partition, change)
        elif topic == ERASURES:
            self.forget(doc["profile_id"])

    # --- inputs ----------------------------------------------------------------------------------------

    async def on_events(self, partition: int, docs: Sequence[dict[str, Any]]) -> None:
        """A batch of events (ingest forwards them so, each batch of one partition); the customers they may
        enter into a journey were read (:meth:`wanted`), those they cannot enter not at all."""
        for doc in docs:
            if event := self.relevant(doc):
                await self.on_event(partition, *event)

    def relevant(self, doc: dict[str, Any]) -> tuple[str, Occurrence, Journeys, Journeys] | None:
        """An event with the journeys it may trigger and those watching for it, or None: none of either."""
        pid, kind = doc.get("profile_id"), doc.get("type")
        if not isinstance(pid, str) or not isinstance(kind, str):
            return None
        triggered, watching = self.index.triggered_by(kind), self.index.watching(kind)
        if not triggered and not watching:
            return None
        return pid, event_occurrence_of(doc), triggered, watching

    async def on_event(
        self, partition: int, pid: str, occ: Occurrence, triggered: Journeys, watching: Journeys
    ) -> None:
        now = self.clock()
        for key in self.customer_doc(pid)["keys"] if watching else ():
            entry = self.enrollments.get(key)
            journey = self.index.journeys.get(entry["journey_id"]) if entry else None
            if entry and journey in watching:
                enrollment, effects = on_event(journey, Enrollment.from_json(entry), occ, now)
                await self.apply(
                    journey, key, enrollment, effects, _Call(partition, Customer({"profile_id": pid}), now)
                )
        if triggered:
            await self.trigger(partition, pid, triggered, occ)

    async def on_segment(self, partition: int, doc: dict[str, Any]) -> None:
        if entry := self.segment_entry(doc):
            await self.trigger(partition, doc["profile_id"], *entry)

    def segment_entry(self, doc: dict[str, Any]) -> tuple[Journeys, Occurrence] | None:
        """The journeys a segment change triggers, and it as their occurrence (None: it triggers none)."""
        if journeys := self.index.by_segment(doc["segment"], doc["change"]):
            return journeys, segment_change(doc["segment"], doc["change"], datetime.fromisoformat(doc["at"]))
        return None

    async def trigger(self, partition: int, pid: str, journeys: Sequence[Journey], occ: Occurrence) -> None:
        """Enter the customer where ``occ`` may."""
        now = self.clock()
        journeys = self.entering(pid, journeys, occ, now)
        if not journeys:
            return
        customer = customer_of((await self.read([pid]))[pid], pid, self.customer_doc(pid))
        if customer is None:
            return
        call = _Call(partition, customer, now)
        for journey in journeys:
            # the cap counts the messages the journeys before this one have just sent
            call.customer = replace(call.customer, sent=sent_of(self.customer_doc(pid)))
            key = state_key(journey, pid, occ)
            enrollment, effects = on_trigger(journey, self.enrollment(key), occ, call.customer, call.now)
            await self.apply(journey, key, enrollment, effects, call)

    def entering(self, pid: str, journeys: Sequence[Journey], occ: Occurrence, now: datetime) -> list[Journey]:
        """The journeys ``occ`` may enter the customer in (:func:`may_enter`)."""
        return [j for j in journeys if may_enter(j, self.enrollment(state_key(j, pid, occ)), occ, now)]

    def enrollment(self, key: str) -> Enrollment | None:
        return Enrollment.from_json(found) if (found := self.enrollments.get(key)) else None

    async def on_profile(self, partition: int, change: dict[str, Any]) -> None:
        """Enter the customer where a profile or items trigger finds an occurrence it may enter on; the
        change is read in full only then (most changes find none, or ones entered already)."""
        if change.get("merged_into") or not self.index.profiled:
            return
        pid, now, view, customer = change["profile_id"], self.clock(), self.index.read_view(change), None
        for journey in self.index.profiled:
            assert isinstance(journey.trigger, ProfileTrigger | ItemsTrigger)
            for occ in profile_occurrences(journey.trigger, view, change, now):
                found = self.enrollments.get(key := state_key(journey, pid, occ))
                if found and found["occurrence"] == occ.id:  # entered already: most changes (not decoded)
                    continue
                enrollment = Enrollment.from_json(found) if found else None
                if may_enter(journey, enrollment, occ, now):
                    customer = customer or Customer(LazyView(change, view), record=change)
                    call = _Call(partition, replace(customer, sent=sent_of(self.customer_doc(pid))), now)
                    await self.apply(journey, key, *on_trigger(journey, enrollment, occ, call.customer, now), call)

    def schedule_dates(self, partition: int, change: dict[str, Any]) -> None:
        """A changed profile's next date occurrence per date-triggered journey, due when it comes (stale: never)."""
        if change.get("merged_into") or not self.index.dated:
            return
        pid, now, customer = change["profile_id"], self.clock(), Customer(view := self.index.date_view(change))
        for journey in self.index.dated:
            assert isinstance(journey.trigger, DateTrigger)
            occ = date_occurrence(journey.trigger, view, customer.zone(journey.policy), now)
            key = f"{DATE_PREFIX}{journey.id}:{pid}"
            due = None if occ is None or is_stale(occ, now) else max(occ.at, now).timestamp()
            if (self.enrollments.get(key) or {}).get("due") != due:
                self.write(key, {"journey_id": journey.id, "profile_id": pid, "due": due}, partition)

    # --- due times ---------------------------------------------------------------------------------------

    async def fire(self, partition: int, keys: Sequence[str]) -> None:
        now = self.clock()
        due = {key: doc for key in keys if (doc := self.enrollments.get(key)) and is_due(doc, now)}
        for key in [key for key, doc in due.items() if doc.get("ended") is not None]:
            self.drop(key, due.pop(key)["profile_id"])  # ended long enough ago to be forgotten
        fresh = await self.read(doc["profile_id"] for doc in due.values())
        for key, doc in due.items():
            journey = self.index.journeys.get(doc["journey_id"])
            customer = customer_of(fresh[doc["profile_id"]], doc["profile_id"], self.customer_doc(doc["profile_id"]))
            if journey is None or customer is None:
                self.write(key, {**doc, "due": None}, partition)  # the journey is gone, or the customer erased
                continue
            call = _Call(partition, customer, now)
            if key.startswith(DATE_PREFIX):
                await self.fire_date(journey, key, call)
            else:
                enrollment, effects = on_due(journey, Enrollment.from_json(doc), customer, now)
                await self.apply(journey, key, enrollment, effects, call)

    async def fire_date(self, journey: Journey, key: str, call: _Call) -> None:
        assert isinstance(journey.trigger, DateTrigger)
        pid = call.customer.profile_id
        self.write(key, {"journey_id": journey.id, "profile_id": pid, "due": None}, call.partition)
        occ = date_occurrence(journey.trigger, call.customer.view, call.customer.zone(journey.policy), call.now)
        if occ is not None:
            skey = state_key(journey, pid, occ)
            enrollment, effects = on_trigger(journey, self.enrollment(skey), occ, call.customer, call.now)
            await self.apply(journey, skey, enrollment, effects, call)

    async def tick(self) -> None:
        """Ask for the due entries to be fired: one record of keys per partition."""
        now = self.clock().timestamp()
        found: dict[int, list[str]] = {}
        for key, doc in self.due_index.pop_due(now, self.enrollments.get):
            found.setdefault(doc["partition"], []).append(key)
            self.due_index.add(key, now + RESEND_S)  # asked again unless firing it changed it
        for partition, keys in sorted(found.items()):
            try:
                await self.send_due(partition, orjson.dumps(keys))
            except Exception:  # the broker away for a moment: asked again after RESEND_S
                log.exception("could not ask for the due journey steps of partition %d", partition)
        if self.due_index.needs_rebuild(len(self.enrollments)):
            self.rebuild()

    def forget(self, pid: str) -> None:
        """An erased customer: every entry about them leaves the tables (a tombstone on each changelog). All
        were written on the partition of the customer's records, the one the erasure arrives on. A scan of
        the enrollments' keys (each names its customer: only those are decoded): erasures are rare, and
        ended enrollments are not indexed per customer."""
        for key in [k for k in self.enrollments if pid in k and self.enrollments[k].get("profile_id") == pid]:
            del self.enrollments[key]
        if self.customers.get(pid) is not None:
            del self.customers[pid]

    def drop(self, key: str, pid: str) -> None:
        """An ended enrollment leaves the tables (and its customer's keys)."""
        del self.enrollments[key]
        doc = self.customer_doc(pid)
        if key in doc["keys"]:
            self.customers[pid] = {**doc, "keys": [k for k in doc["keys"] if k != key]}

    def rebuild(self) -> None:
        self.due_index.rebuild(self.enrollments.items())

    # --- effects and writes ----------------------------------------------------------------------------

    async def apply(
        self, journey: Journey, key: str, enrollment: Enrollment | None, effects: list[Effect], call: _Call
    ) -> None:
        """Carry out the effects, then write the enrollment and the customer's keys and sends."""
        pid, sent = call.customer.profile_id, []
        for effect in effects:
            if isinstance(effect, Send):
                self.held.alerts.append(to_alert(effect, call.now))
                sent += [call.now] if effect.capped else []
            elif isinstance(effect, UpdateProfile):
                self.held.updates.append((pid, update_event(effect, call.customer.view, call.now)))
            elif isinstance(effect, Schedule) and _is_date(journey, enrollment, effect):
                doc = {"journey_id": journey.id, "profile_id": pid, "due": effect.at.timestamp()}
                self.write(f"{DATE_PREFIX}{journey.id}:{pid}", doc, call.partition)
        self.held.note(pid, effects, call.now)
        if enrollment is not None:
            old = self.enrollments.get(key)
            doc = {**enrollment.to_json(), "due": due_at(journey, enrollment, old, call.now)}
            if not same(old, doc):
                self.write(key, doc, call.partition)
        self.notecustomer_of(pid, key, journey, enrollment, sent, call)

    def write(self, key: str, doc: dict[str, Any], partition: int) -> None:
        self.enrollments[key] = {**doc, "partition": partition}
        self.due_index.add(key, doc.get("due"))

    def customer_doc(self, pid: str) -> dict[str, Any]:
        return self.customers.get(pid) or {"keys": [], "sent": []}

    def notecustomer_of(
        self, pid: str, key: str, journey: Journey, enrollment: Enrollment | None, sent: list[datetime], call: _Call
    ) -> None:
        doc = self.customer_doc(pid)
        keys = [k for k in doc["keys"] if k != key]
        if enrollment is not None and may_act(journey, enrollment, call.now):
            keys.append(key)
        since = (call.now - SENT_KEPT).isoformat()
        sends = [at for at in doc["sent"] if at >= since] + [at.isoformat() for at in sent]
        if keys != doc["keys"] or sends != doc["sent"]:
            self.customers[pid] = {"keys": keys, "sent": sends}


def _is_date(journey: Journey, enrollment: Enrollment | None, schedule: Schedule) -> bool:
    """A schedule for the journey's next date occurrence (not for the enrollment's own wait)."""
    waits = enrollment is not None and enrollment.due_at == schedule.at
    return isinstance(journey.trigger, DateTrigger) and not waits
