"""The shared library of crmhub: what every service and the composition root build on.

It imports only ``schemas`` (and third-party packages), never ``services`` nor the rest of ``crmhub``
(the composition root); ``lint-imports`` checks it. See docs/architecture.md.
"""
