"""crmhub: a message-driven CRM integration hub for retail."""

__version__ = "0.1.0"
