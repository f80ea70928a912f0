"""crmhub's error tree.

    CrmhubError
    ├── ConfigError          a setting is wrong: the user must change it (the process stops, one message)
    │   ├── PortInUse        a port crmhub should listen on is taken
    │   ├── ConditionError   a condition of the segment language does not compile (crmhub.core.conditions)
    │   ├── SegmentError     a segment definition does not parse (crmhub.core.conditions.language)
    │   └── JourneyError     a journey definition is wrong (services.notifier.journeys.catalog)
    ├── ServerUnavailable    a server (Kafka, Redis, SQL) does not answer: wait and try again
    │   └── IntakeUnavailable  the collector cannot make an input durable now: 503 (crmhub.core.intake)
    ├── Retryable            the same input may succeed if tried again (another instance wrote meanwhile)
    │   └── StaleProfiles    a guarded save found profiles changed since read (services.profile.store)
    ├── Poison               this one input can never be handled: it becomes a dead letter
    └── Fenced               the partitions belong to another instance now (services.profile.store)

How the runtime (``crmhub.core.runtime``) treats an exception raised while handling a batch:

- ``ServerUnavailable`` and ``Retryable``, and the client libraries' own "server not answering" errors
  (redis ``ConnectionError``/``TimeoutError``, SQLAlchemy ``OperationalError``/``InterfaceError``, Kafka
  timeouts; see :func:`is_retryable`): log, wait with backoff, handle the *same* batch again. Nothing is
  skipped or lost; ``/ready`` names what is down meanwhile.
- anything else is poison: the batch is handled again a record at a time, and each record that still
  fails alone becomes a dead letter with the exception as its reason and where it was raised as its
  location; the stream goes on. A service never crash-loops on one record.

Input that fails validation is not an exception at all: ingest turns it into a dead letter (data, not
control flow), see ``services.ingest.decode``.
"""

from __future__ import annotations

import redis.exceptions
import sqlalchemy.exc
from kafka.errors import KafkaConnectionError, KafkaTimeoutError


class CrmhubError(Exception):
    """Base of every error crmhub reports to the user without a traceback."""


class ConfigError(CrmhubError):
    pass


class PortInUse(ConfigError):
    pass


class ServerUnavailable(CrmhubError):
    pass


class Retryable(CrmhubError):
    """The batch may succeed if handled again as it is (e.g. a guarded save lost a race)."""


class Poison(CrmhubError):
    """One input that can never be handled; ``location`` says which part of it (a field, ``body``)."""

    def __init__(self, reason: str, location: str = "body") -> None:
        super().__init__(reason)
        self.reason, self.location = reason, location


# the client libraries' ways of saying "the server did not answer"
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ServerUnavailable,
    Retryable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    KafkaTimeoutError,
    KafkaConnectionError,
    ConnectionError,
    TimeoutError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether handling the same input again, later, may succeed (a server down, a lost race)."""
    return isinstance(exc, _UNAVAILABLE)
