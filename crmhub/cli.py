"""The ``crmhub`` command line: up, demo, publish, topics, tail."""

from __future__ import annotations

import functools
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import click
from pydantic import ValidationError

from crmhub.core.errors import CrmhubError
from crmhub.core.setting_values import SOURCES
from crmhub.core.settings import MAX_OVER_S, Settings
from crmhub.core.tokens import SCOPES
from crmhub.embedded import shutdown

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """Add a ``--<name>`` flag for every setting; flags win over ``CRMHUB_<NAME>`` variables."""
    for name, field in reversed(Settings.model_fields.items()):
        func = click.option(
            f"--{name.replace('_', '-')}",
            name,
            default=None,
            show_default=False,
            help=f"{field.description} [env: CRMHUB_{name.upper()}]",
        )(func)

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in Settings.model_fields}
        try:
            settings = Settings(**{k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise click.UsageError(f"setting {err['loc'][0]}: {err['msg']}") from exc
        return func(settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def friendly_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CrmhubError as exc:
            click.secho(f"crmhub: {exc}", fg="red", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM ask the supervisor to stop; it does so at its next safe point."""

    def handler(signum: int, frame: FrameType | None) -> None:
        shutdown.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.group()
@click.version_option(package_name="crmhub")
def main() -> None:
    """crmhub: a message-driven CRM integration hub for retail."""


@main.command()
@settings_options
@friendly_errors
def up(settings: Settings) -> None:
    """Run the whole hub in the foreground (embedded broker and Redis unless URLs are set). Ctrl-C stops it."""
    from crmhub.console import run_hub

    stop_on_signals()
    run_hub(settings, rate=0, duration=None)


@main.command()
@click.option("--rate", type=click.FloatRange(min=0), default=50.0, show_default=True, help="Events per second.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds of traffic, then stop (default: until Ctrl-C).",
)
@click.option("--customers", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option(
    "--bad-fraction",
    type=click.FloatRange(0, 1),
    default=0.005,
    show_default=True,
    help="Share of deliberately invalid inputs (they end as dead letters).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the synthetic traffic (default: a new one each run, so ids never repeat).",
)
@settings_options
@friendly_errors
def demo(
    settings: Settings, rate: float, duration: float | None, customers: int, bad_fraction: float, seed: int | None
) -> None:
    """Run the whole hub with live synthetic retail traffic."""
    from crmhub.console import run_hub

    stop_on_signals()
    if "abandonment_delay_s" not in settings.model_fields_set:
        settings = settings.model_copy(update={"abandonment_delay_s": 20.0})  # see alerts within a demo
    run_hub(
        settings,
        rate=rate,
        duration=duration,
        customers=customers,
        bad_fraction=bad_fraction,
        seed=seed if seed is not None else secrets.randbits(31),
    )


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=None,
    help="Raw topic to publish to (default: each line's 'source', Segment messages go to web).",
)
@settings_options
@friendly_errors
def publish(settings: Settings, file: Path, source: str | None) -> None:
    """Send events from a JSON-lines FILE to a running hub, with a progress bar."""
    from crmhub.publish import publish_file

    publish_file(settings, file, source)


@main.group()
def catalog() -> None:
    """The product catalogue (docs/events.md#the-product-catalogue)."""


@catalog.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@settings_options
@friendly_errors
def catalog_load(settings: Settings, file: Path) -> None:
    """Upsert the products of a JSON-lines FILE (one product a line) into the catalogue of a running hub."""
    from crmhub.catalog import load_catalog

    load_catalog(settings, file)


@main.command()
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2, max=MAX_OVER_S),
    default=1.0,
    show_default=True,
    help="Seconds between the two samples the rates come from (and between refreshes).",
)
@settings_options
@friendly_errors
def status(settings: Settings, watch: bool, interval: float) -> None:
    """What a running hub is doing: events/s per source and service, lag, dead letters by reason, segment
    sizes, recent alerts with their delivery, memory (the dashboard's figures, from its API)."""
    from crmhub.status import show

    stop_on_signals()
    show(settings, watch, interval)


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
@settings_options
@friendly_errors
def topics_create(settings: Settings) -> None:
    """Create every crmhub topic that is missing (idempotent); print the topics' incarnation id."""
    from crmhub.core import kafka as kafka_io

    kafka_io.wait_until_reachable(settings, timeout_s=60)
    started = time.monotonic()
    run_id = kafka_io.ensure_topics(settings)
    click.echo(f"topics ready (incarnation {run_id}) in {time.monotonic() - started:.1f} s")


@main.group()
def schemas() -> None:
    """The event and document contracts."""


@schemas.command("export")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write to (default: schemas/json in the source tree, the committed snapshots).",
)
def schemas_export(out_dir: Path | None) -> None:
    """Write the JSON Schema of every event type and published document."""
    from schemas.export import SNAPSHOT_DIR, export

    written = export(out_dir or SNAPSHOT_DIR)
    click.echo(f"wrote {len(written)} JSON Schema files to {(out_dir or SNAPSHOT_DIR)}")


@main.group()
def deadletters() -> None:
    """Inputs that did not become events, with the reason."""


@deadletters.command("list")
@click.option("--reason", default=None, help="Only letters whose reason contains this text.")
@click.option("--source", type=click.Choice(SOURCES), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show the latest N.")
@settings_options
@friendly_errors
def deadletters_list(settings: Settings, reason: str | None, source: str | None, limit: int) -> None:
    """Show the dead letters of a running hub: where each input came from and why it was refused."""
    from crmhub.deadletters import print_list, read_deadletters

    print_list(read_deadletters(settings, reason, source), limit)


@deadletters.command("replay")
@click.option("--reason", default=None, help="Only letters whose reason contains this text.")
@click.option("--source", type=click.Choice(SOURCES), default=None)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@settings_options
@friendly_errors
def deadletters_replay(settings: Settings, reason: str | None, source: str | None, yes: bool) -> None:
    """Re-ingest dead letters (after a fix): each original input goes back to its raw topic; what is
    still invalid becomes a new dead letter, what is now valid an event."""
    from crmhub.deadletters import read_deadletters, replay

    letters = read_deadletters(settings, reason, source)
    if not letters:
        click.echo("no dead letters match")
        return
    if not yes:
        click.confirm(f"replay {len(letters)} dead letters?", abort=True)
    replayed, skipped = replay(settings, letters)
    click.echo(f"replayed {replayed} inputs" + (f"; skipped {skipped} from later stages" if skipped else ""))


@main.group()
def tail() -> None:
    """Follow a topic and print what arrives."""


@tail.command("alerts")
@click.option("--from-beginning", is_flag=True, help="Print the alerts already on the topic first.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N alerts (default: Ctrl-C).")
@settings_options
@friendly_errors
def tail_alerts(settings: Settings, from_beginning: bool, limit: int | None) -> None:
    """Follow crm.alerts.v1: one line per alert (time, kind, level or count, profile, summary, id)."""
    from crmhub.tail import follow_alerts

    stop_on_signals()
    follow_alerts(settings, from_beginning, limit)


@main.group()
def identity() -> None:
    """ingest's identity index in Redis."""


@identity.command("rebuild")
@settings_options
@friendly_errors
def identity_rebuild(settings: Settings) -> None:
    """Restore the identity index from SQL after Redis lost it (links Redis still holds are kept) and the
    suppression of erased identifiers, with a progress bar; identifiers kept in clear text by an older
    crmhub are deleted and restored as keyed hashes. Run it before ingest starts again, so no customer
    gets a second profile and no erased person comes back."""
    from crmhub.identity_index import rebuild

    dropped, restored, suppressed = rebuild(settings)
    click.echo(
        f"restored {restored} identity links and {suppressed} suppressed (erased) identifiers from SQL"
        + (f"; dropped {dropped} clear-text identifiers" if dropped else "")
    )


@main.group()
def tokens() -> None:
    """Scoped API tokens (stored as digests in the hub's database; docs/security.md)."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--scope", "scopes", multiple=True, required=True, type=click.Choice(list(SCOPES)), help="Repeat for several."
)
@settings_options
@friendly_errors
def tokens_create(settings: Settings, name: str, scopes: tuple[str, ...]) -> None:
    """Make a token NAME with the given scopes; its secret is printed once and stored nowhere."""
    from crmhub.tokens import create

    token_id, secret = create(settings, name, frozenset(scopes))
    click.echo(f"token {token_id} ({', '.join(sorted(scopes))}):\n{secret}")


@tokens.command("list")
@settings_options
@friendly_errors
def tokens_list(settings: Settings) -> None:
    """Every token: id, name, scopes, made, revoked (never a secret)."""
    from crmhub.tokens import print_list

    print_list(settings)


@tokens.command("revoke")
@click.argument("token_id")
@settings_options
@friendly_errors
def tokens_revoke(settings: Settings, token_id: str) -> None:
    """Revoke the token TOKEN_ID at once (and the dashboard sessions opened with it)."""
    from crmhub.tokens import revoke

    revoke(settings, token_id)
    click.echo(f"revoked token {token_id}")


@main.group()
def audit() -> None:
    """The audit log: who read, exported or erased whom; replays; token changes (docs/security.md)."""


@audit.command("export")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only entries after this id.")
@click.option("--out", type=click.File("wb"), default="-", help="A file (default: standard output).")
@settings_options
@friendly_errors
def audit_export(settings: Settings, after: int, out: IO[bytes]) -> None:
    """Write the audit log as JSON lines, oldest first (id, at, token_id, action, profile_id, request_id)."""
    from crmhub.tokens import export_audit

    written = export_audit(settings, out, after)
    click.echo(f"exported {written} audit entries", err=True)


@main.group()
def segments() -> None:
    """Segment definitions, sizes, and trying a condition on a profile."""


@segments.command("list")
@settings_options
@friendly_errors
def segments_list(settings: Settings) -> None:
    """Every segment (file and API) with its size."""
    from crmhub.segments import print_list

    print_list(settings)


@segments.command("show")
@click.argument("name")
@settings_options
@friendly_errors
def segments_show(settings: Settings, name: str) -> None:
    """One segment: definition, fields read, clock, size, backfill progress, recent sizes."""
    from crmhub.segments import print_segment

    print_segment(settings, name)


@segments.command("test")
@click.argument("condition")
@click.option("--profile", "profile_id", required=True, help="The id of a stored profile.")
@settings_options
@friendly_errors
def segments_test(settings: Settings, condition: str, profile_id: str) -> None:
    """Evaluate CONDITION against a stored profile, before saving it as a segment (nothing is saved)."""
    from crmhub.segments import print_test

    print_test(settings, condition, profile_id)


@main.group()
def journeys() -> None:
    """The journeys of the journeys file, their figures, and a dry run against a profile."""


@journeys.command("list")
@settings_options
@friendly_errors
def journeys_list(settings: Settings) -> None:
    """Every journey with its status, trigger and how many entered, got a message and converted."""
    from crmhub.journeys import print_list

    print_list(settings)


@journeys.command("show")
@click.argument("journey_id")
@settings_options
@friendly_errors
def journeys_show(settings: Settings, journey_id: str) -> None:
    """One journey: its trigger and the counts of each step."""
    from crmhub.journeys import print_journey

    print_journey(settings, journey_id)


@journeys.command("test")
@click.argument("journey_id")
@click.option("--profile", "profile_id", required=True, help="The id of a stored profile.")
@settings_options
@friendly_errors
def journeys_test(settings: Settings, journey_id: str, profile_id: str) -> None:
    """Dry-run JOURNEY_ID for a stored profile as it is now: the steps it would take and why, waits
    passed at once (a paused journey too; nothing is sent or written)."""
    from crmhub.journeys import print_test

    print_test(settings, journey_id, profile_id)


if __name__ == "__main__":
    main()
