"""Journeys: a trigger, steps (wait, branch, send, update, exit), exit criteria, consent, quiet hours,
frequency caps and a goal, declared in YAML (``docs/journeys.md``).

Here is the pure core only: the definition (:mod:`.definition`, loaded by :mod:`.catalog`), the engine
(:mod:`.engine`) that turns a trigger, a due time or an event into frozen effects (:mod:`.effects`), and
the enrollment state (:mod:`.state`) the wiring keeps per (journey, profile). Conditions are written in the
segment language (:mod:`crmhub.core.conditions`).
"""
