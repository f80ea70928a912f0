"""crmhub's error tree.

    CrmhubError
    ├── ConfigError          a setting is wrong: the user must change it
    ├── ServerUnavailable    a server (Kafka, Redis, SQL) does not answer
    └── PortInUse            a port crmhub should listen on is taken

Input that fails validation is not an exception: ingest turns it into a dead letter (data, not control
flow), see ``services.ingest.decode``.
"""


class CrmhubError(Exception):
    """Base of every error crmhub reports to the user without a traceback."""


class ConfigError(CrmhubError):
    pass


class ServerUnavailable(CrmhubError):
    pass


class PortInUse(CrmhubError):
    pass
