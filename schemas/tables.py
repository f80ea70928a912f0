"""The tables of the hub's database: one ``MetaData`` that the Alembic migrations
(``crmhub/core/migrations/``) make exactly (a test compares them).

The schema is a contract between several owners, so it sits below them all: the profile service writes
the profile tables, the segmenter its two segment tables, and readers of another service's rows (the
segmenter reading profiles) go through the read models in :mod:`schemas.readmodels`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# written by the profile service; ``profiles`` is also read by the segmenter and the API
# (schemas/readmodels/profiles.py), the rest only through the profile service's store

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("doc", Text, nullable=False),
    # the profile's currency and net revenue in it (ten-thousandths), for the top customers report
    Column("currency", String(3), nullable=True),
    Column("net_units", BigInteger, nullable=True),
    Index("ix_profiles_net", "currency", "net_units"),
)
identifiers = Table(
    "identifiers",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("profile_id", String(64), nullable=False),
    Index("ix_identifiers_profile", "profile_id"),
)
consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(128), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("incarnation", String(64), nullable=False),
    Column("next_offset", BigInteger, nullable=False),
)
profile_events = Table(
    "profile_events",
    metadata,
    Column("profile_id", String(64), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("type", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("doc", Text, nullable=False),
    Index("ix_profile_events_time", "profile_id", "occurred_at"),
)
erased_profiles = Table(
    "erased_profiles",
    metadata,
    Column("profile_id", String(64), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

suppressed_identifiers = Table(
    "suppressed_identifiers",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

# the intake journal's seqs of the inputs folded, written with the profiles: an input the journal produces
# again after a broker loss is folded once (crmhub.core.intake); forgotten once the journal is trimmed
folded_inputs = Table("folded_inputs", metadata, Column("seq", BigInteger, primary_key=True))

# report roll-ups (docs/reports.md), written by the profile service with the profiles (services/profile/
# reports.py) and read by the API (crmhub/reports.py); counts and sums, never a row per person.
# Money in ten-thousandths of the currency (exact integers).
report_sales = Table(
    "report_sales",
    metadata,
    Column("day", Date, primary_key=True),
    Column("dimension", String(16), primary_key=True),  # channel, store, payment_method
    Column("key", String(200), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("orders", Integer, nullable=False),
    Column("gross_units", BigInteger, nullable=False),
    Column("refunded_units", BigInteger, nullable=False),
)
report_cohorts = Table(  # customers by the month of their first order, and those of them with two or more
    "report_cohorts",
    metadata,
    Column("cohort", String(7), primary_key=True),
    Column("customers", Integer, nullable=False),
    Column("repeaters", Integer, nullable=False),
)
report_retention = Table(  # customers of a cohort who ordered in a month
    "report_retention",
    metadata,
    Column("cohort", String(7), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("customers", Integer, nullable=False),
)
report_responses = Table(  # complaints answered, by the day they were made and whole seconds to the answer
    "report_responses",
    metadata,
    Column("day", Date, primary_key=True),
    Column("seconds", Integer, primary_key=True),
    Column("complaints", Integer, nullable=False),
)

# written by the segmenter: segment definitions made through the API, and segment sizes over time
segment_definitions = Table(
    "segment_definitions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("condition", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sync", Text, nullable=True),  # the audience sync setting as JSON (crmhub.core.audience), or none
)
journey_definitions = Table(  # journeys made through the API: the version in force
    "journey_definitions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("doc", Text, nullable=False),  # the journey as JSON, as it was posted (with its version)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
journey_versions = Table(  # every version saved, and deletions (doc NULL)
    "journey_versions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("doc", Text, nullable=True),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Column("saved_by", String(32), nullable=False),  # the token id
)
segment_sizes = Table(
    "segment_sizes",
    metadata,
    Column("segment", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("size", Integer, nullable=False),
)

# API tokens (crmhub.core.tokens): only a SHA-256 digest of each secret is kept, never the secret itself;
# a revoked token keeps its row (the audit log names it) with ``revoked_at`` set
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scopes", String(500), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# the audit log (crmhub.core.audit): who read, exported or erased whom, replayed dead letters, changed
# tokens; append-only (the migration adds triggers refusing UPDATE and DELETE); never personal data: a
# token's id, a profile's id, a request id
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("token_id", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("profile_id", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("detail", String(500), nullable=False),
    Index("ix_audit_log_profile", "profile_id"),
)
