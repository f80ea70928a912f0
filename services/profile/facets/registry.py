"""The facets of the profile, in the order they fold and merge (loyalty before orders: merging orders
corrects the loyalty points of an order both profiles counted)."""

from __future__ import annotations

from schemas.events import EVENT_MODELS, Envelope
from services.profile.facets import (
    Facet,
    Fold,
    cart,
    cases,
    complaints,
    consent,
    context,
    engagement,
    feedback,
    fulfilment,
    groups,
    identity,
    invoices,
    loyalty,
    members,
    orders,
    payments,
    products,
    traits,
)

FACETS: tuple[Facet, ...] = (
    identity.FACET,
    traits.FACET,
    context.FACET,
    groups.FACET,
    consent.FACET,
    cart.FACET,
    loyalty.FACET,
    orders.FACET,
    payments.FACET,
    complaints.FACET,
    fulfilment.FACET,  # after orders: it sets the status of their records
    products.FACET,  # after fulfilment: an order sent back before it arrived is not owned
    invoices.FACET,
    engagement.FACET,
    members.FACET,
    cases.FACET,
    feedback.FACET,
)
EVERY: tuple[Fold, ...] = tuple(f.every for f in FACETS if f.every is not None)


def _folds_by_type() -> dict[type[Envelope], tuple[Fold, ...]]:
    """Per event model, the folds declared for it or for a class it derives from (``SocialMessage``
    stands for mentions, comments and direct messages), in facet order."""
    return {
        model: folds
        for model in EVENT_MODELS
        if (folds := tuple(fold for f in FACETS for t, fold in f.folds.items() if issubclass(model, t)))
    }


FOLDS = _folds_by_type()
