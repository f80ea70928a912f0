"""Ingest's pure decoding alone: demo raw inputs through ``decode_raw`` (JSON, normalisation, upcasting,
validation), no Kafka or Redis. Prints the best of several rounds, in decodes per second.

    python benchmarks/decode.py --inputs 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import orjson

from crmhub.demo.traffic import RetailSimulator
from services.ingest.decode import RawInput, decode_raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    generated = RetailSimulator(seed=1, customers=20_000, bad_fraction=0.0).next_batch(now, args.inputs)
    raws = [
        RawInput(g.source, g.payload if isinstance(g.payload, bytes) else orjson.dumps(g.payload), now)
        for g in generated
    ]
    times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for raw in raws:
            decode_raw(raw)
        times.append(time.perf_counter() - started)
    print(f"decode_raw: {len(raws) / min(times):,.0f} inputs/s (best of {args.rounds} rounds of {len(raws):,})")


if __name__ == "__main__":
    main()
