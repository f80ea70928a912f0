"""Which instance of its service this process is.

A service may run as several processes (``crmhub up --scale``, ``docker compose up --scale``), one consumer
group between them. What they count adds up across instances; what belongs to one process (its memory, its
restarts, its log file, faust's data directory) must be told apart. The hub names each child in
``CRMHUB_INSTANCE`` (:func:`instance_names`); a process started otherwise (a container) is told apart by its
host name, which docker sets to the container's id.

``CRMHUB_INSTANCE`` is not a setting (:class:`crmhub.core.settings.Settings`): settings are the same for
every process of a hub, this is what differs between them.
"""

from __future__ import annotations

import os
import re
import socket

INSTANCE_ENV = "CRMHUB_INSTANCE"
_NUMBERED = re.compile(r"-\d+$")


def instance_names(service: str, count: int) -> list[str]:
    """The hub's names of a service's ``count`` processes: the service's own name when it runs once (its
    log, ``logs/profile.log``, where it always was), else numbered ``profile-1`` … ``profile-N``."""
    return [service] if count == 1 else [f"{service}-{n}" for n in range(1, count + 1)]


def instance_name(service: str) -> str:
    """This process's name among its service's instances."""
    return os.environ.get(INSTANCE_ENV) or f"{service}@{socket.gethostname()}"


def service_of(instance: str) -> str:
    """The service an instance name belongs to: ``profile-2`` and ``profile@host`` -> ``profile``."""
    return _NUMBERED.sub("", instance.split("@", 1)[0])
