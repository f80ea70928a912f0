"""The committed JSON Schema snapshots equal what the models produce: a contract change is a visible diff."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.events import EVENT_TYPES
from schemas.export import SNAPSHOT_DIR, export, json_schemas, render


def test_committed_snapshots_match_the_models() -> None:
    schemas = json_schemas()
    committed = {str(p.relative_to(SNAPSHOT_DIR)) for p in SNAPSHOT_DIR.rglob("*.json")}
    assert committed == set(schemas), "run `crmhub schemas export` and commit schemas/json/"
    for name, schema in schemas.items():
        assert (SNAPSHOT_DIR / name).read_bytes() == render(schema), (
            f"the contract in {name} changed: run `crmhub schemas export` and review the diff"
        )


def test_every_event_type_has_a_schema_naming_its_type(tmp_path: Path) -> None:
    written = export(tmp_path)
    events = sorted(p.name for p in written if p.parent.name == "events")
    assert "order-completed.json" in events and "pos-sale.json" in events and len(events) == len(EVENT_TYPES)
    order = orjson.loads((tmp_path / "events" / "order-completed.json").read_bytes())
    assert order["properties"]["type"]["const"] == "Order Completed"
    assert "order_id" in order["$defs"]["OrderProperties"]["required"]
