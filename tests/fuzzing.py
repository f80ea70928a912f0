"""How the suite fuzzes (Hypothesis, and Schemathesis on top of it).

``make test`` draws a fixed number of cases from a fixed seed (derandomised): a run is reproducible and a
green ``main`` stays green on what was already explored. ``make fuzz`` explores anew: random seeds and
``CRMHUB_FUZZ_EXAMPLES`` cases per test; what it finds becomes a fixed example in the unit tests.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXPLORE = int(os.environ.get("CRMHUB_FUZZ_EXAMPLES", "0"))


def cases(examples: int) -> settings:
    """Hypothesis settings for a fuzz test that draws ``examples`` cases in the suite."""
    return settings(
        max_examples=EXPLORE or examples,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
