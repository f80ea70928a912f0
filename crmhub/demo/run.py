"""The demo's traffic process: synthetic retail events at a steady rate, web events through the HTTP
collector (as Segment SDKs would send them), store/payment/social/support events to their raw topics."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import click
import httpx
import orjson

from crmhub.core.logs import setup_logging
from crmhub.core.settings import Settings
from crmhub.demo.traffic import Generated, RetailSimulator
from crmhub.publish import RawPublisher

log = logging.getLogger("crmhub.traffic")
TICK_S = 0.1


def encode(item: Generated) -> bytes:
    return item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)


def send_web(client: httpx.Client, items: list[Generated]) -> None:
    """One Segment /v1/batch request; invalid JSON is posted alone, as a broken client would."""
    good = [i.payload for i in items if not isinstance(i.payload, bytes)]
    if good:
        client.post("/v1/batch", content=orjson.dumps({"batch": good, "sentAt": datetime.now(UTC).isoformat()}))
    for item in items:
        if isinstance(item.payload, bytes):
            client.post("/v1/batch", content=item.payload)


@click.command()
@click.option("--rate", type=float, required=True)
@click.option("--duration", type=float, default=None)
@click.option("--customers", type=int, default=2000)
@click.option("--bad-fraction", type=float, default=0.0)
@click.option("--seed", type=int, default=7)
def main(rate: float, duration: float | None, customers: int, bad_fraction: float, seed: int) -> None:
    settings = Settings()
    setup_logging(settings, "traffic")
    sim = RetailSimulator(seed=seed, customers=customers, bad_fraction=bad_fraction)
    publisher = RawPublisher(settings)
    web_keys = [k for k, source in settings.write_key_sources.items() if source == "web"]
    client = (
        httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", auth=(web_keys[0], ""), timeout=10)
        if web_keys
        else None
    )
    started = time.monotonic()
    sent = 0
    try:
        while duration is None or time.monotonic() - started < duration:
            due = int(rate * (time.monotonic() - started)) - sent
            if due > 0:
                batch = sim.next_batch(datetime.now(UTC), due)
                web = [i for i in batch if i.source == "web"] if client else []
                if client and web:
                    send_web(client, web)
                for item in batch:
                    if not (client and item.source == "web"):
                        publisher.send(item.source, item.key, encode(item))
                publisher.producer.flush()
                sent += due
            time.sleep(TICK_S)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.close()
        log.info("traffic sent %d events in %.1f s", sent, time.monotonic() - started)


if __name__ == "__main__":
    main()
