"""Carrying out effects (``crmhub.core.effects``) on a producer, Redis and the metrics: the one place
that does for every service what each service's ``handle`` used to do by itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from crmhub.core import kafka as kafka_io
from crmhub.core import metrics
from crmhub.core.effects import Count, DeadLetter, Effect, Latency, Publish, PublishBatch, RedisWrite, Tally
from crmhub.core.stats import RECENT_DEADLETTERS, add_counts, push_recent
from crmhub.core.topics import DEADLETTER


class Producer(Protocol):
    """What the runtime needs of a producer: kafka-python's ``KafkaProducer`` or the harness's."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., partition: int | None = ...) -> Any:
        pass

    def flush(self, timeout: float | None = ...) -> None:
        pass

    def partitions_for(self, topic: str) -> set[int]:
        pass


class Sink:
    """Sends, flushes, writes Redis in one pipeline and counts, in that order (``crmhub.core.effects``)."""

    def __init__(self, service: str, producer: Producer, redis: Any, clock: Callable[[], datetime]) -> None:
        self.service, self.producer, self.redis, self.clock = service, producer, redis, clock
        self._partitions: dict[str, int] = {}

    def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            self._partitions[topic] = len(self.producer.partitions_for(topic))
        return self._partitions[topic]

    def carry_out(self, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        dead = self._send(effects)
        self._write(effects, dead)
        self._count(effects, dead)

    def _send(self, effects: Sequence[Effect]) -> list[DeadLetter]:
        dead: list[DeadLetter] = []
        sent = False
        for effect in effects:
            if isinstance(effect, Publish):
                self.producer.send(effect.topic, value=effect.value, key=effect.key, partition=effect.partition)
            elif isinstance(effect, PublishBatch):
                kafka_io.send_batched(self.producer, effect.topic, list(effect.items), self.partitions(effect.topic))
            elif isinstance(effect, DeadLetter):
                self.producer.send(DEADLETTER, value=effect.value)
                dead.append(effect)
            else:
                continue
            sent = True
        if sent:
            self.producer.flush()
        return dead

    def _write(self, effects: Sequence[Effect], dead: list[DeadLetter]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        if fill_pipeline(pipe, effects, dead):
            pipe.execute()

    def _count(self, effects: Sequence[Effect], dead: list[DeadLetter]) -> None:
        count_metrics(self.service, self.clock, effects, dead)


def fill_pipeline(pipe: Any, effects: Sequence[Effect], dead: Sequence[DeadLetter]) -> bool:
    """The Redis writes of ``effects`` (and the recent dead letters) into ``pipe``; False: none."""
    writes = [e for e in effects if isinstance(e, RedisWrite | Count)]
    if not writes and not dead:
        return False
    for effect in writes:
        if isinstance(effect, RedisWrite):
            effect.write(pipe)
        else:
            add_counts(pipe, effect.counts)
    push_recent(pipe, RECENT_DEADLETTERS, [d.value for d in dead])
    return True


def count_metrics(
    service: str, clock: Callable[[], datetime], effects: Sequence[Effect], dead: Sequence[DeadLetter]
) -> None:
    """The metrics of ``effects``: tallies, latencies, and the dead letters' counters."""
    for effect in effects:
        if isinstance(effect, Tally):
            metrics.count(effect.metric, effect.counts)
            if effect.touch:
                for labels in effect.counts:
                    effect.metric.labels(*labels)
        elif isinstance(effect, Latency):
            metrics.observe_ages(metrics.LATENCY, service, clock(), effect.received)
    if dead:
        reasons: dict[tuple[str, ...], int] = {}
        for letter in dead:
            reasons[(service, letter.reason)] = reasons.get((service, letter.reason), 0) + 1
        metrics.count(metrics.DEADLETTERS, reasons)
        metrics.count(metrics.PRODUCED, {(service, DEADLETTER, "deadletter"): len(dead)})
