"""The fetch wait on the real embedded broker: an idle consumer asks Tansu to hold its fetches for the
idle wait (an idle hub polled fifty times a second per consumer), and a record still reaches it."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from crmhub.core import kafka as kafka_io
from crmhub.core.runtime import KafkaSource
from crmhub.hub import Hub
from tests.integration.helpers import uid, wait_for

pytestmark = pytest.mark.integration


def test_an_idle_consumer_s_fetches_wait_longer_at_the_broker_and_a_record_still_arrives(
    hub: Hub, producer: KafkaProducer
) -> None:
    topic = uid("fetch-wait-")
    admin = KafkaAdminClient(bootstrap_servers=hub.settings.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    source = KafkaSource(kafka_io.consumer(hub.settings, None))
    source.consumer.assign([TopicPartition(topic, 0)])
    try:
        idle_until = time.monotonic() + kafka_io.IDLE_AFTER_S + 2
        while time.monotonic() < idle_until:
            assert source.poll(10) == []
        metrics = source.consumer.metrics()["consumer-fetch-manager-metrics"]
        # Tansu held an empty fetch for the idle wait, not the busy one
        assert metrics["fetch-latency-max"] >= 0.75 * kafka_io.IDLE_FETCH_WAIT_MS
        producer.send(topic, b"after a quiet spell").get(timeout=10)
        got = wait_for(lambda: source.poll(10), 10, "the record after a quiet spell")
        assert [r.value for r in got] == [b"after a quiet spell"]
        assert source.consumer._fetcher.config["fetch_max_wait_ms"] == kafka_io.FETCH_MAX_WAIT_MS
    finally:
        source.close()
