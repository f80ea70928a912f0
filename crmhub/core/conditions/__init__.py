"""The segment language, shared: conditions over the typed profile view, compiled and checked once.

It lives in ``crmhub.core`` because two services speak it: the segmenter (segment definitions) and the
notifier's journeys (trigger conditions, branches, exit criteria), and a service never imports another
(the import-linter contract in ``pyproject.toml``). Only the pure language moved here: the view of a
profile (:mod:`.fields`), the time functions and when a condition's truth changes with time alone
(:mod:`.clock`), checking (:mod:`.language`) and compiling conditions to Python with rule-engine's
answers (:mod:`.compiler`, :mod:`.values`). Where segment
definitions come from (the YAML library, SQL) and evaluating them per profile stay in the segmenter.
"""
