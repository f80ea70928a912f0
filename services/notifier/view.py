"""The notifier's typed view of a profile document: the fields its rules read, nothing more.

Profile changes arrive as JSON documents (``schemas.profile.Profile`` dumped in JSON mode), and so does the
profile service's cached copy. Validating each into the full pydantic model would cost more than the rules
themselves on every change, so the notifier reads the decoded document through these ``TypedDict``\\ s:
no copy and no validation at run time, but mypy checks every key and type the rules use. The keys are the
``Profile`` model's (``docs/profile.md``); amounts are strings and times ISO 8601 strings, as JSON has them.
"""

from __future__ import annotations

from typing import Required, TypedDict


class CartItemDoc(TypedDict, total=False):
    product_id: str
    name: str | None
    category: str | None
    price: str
    quantity: int


class CartDoc(TypedDict, total=False):
    items: list[CartItemDoc]
    value: str
    updated_at: str | None


class ViewedDoc(TypedDict, total=False):
    product_id: str
    name: str | None
    category: str | None
    price: str | None
    at: Required[str]


class ComplaintDoc(TypedDict, total=False):
    """A social complaint, or a service case waiting for its first response (``complaints.awaiting``)."""

    message_id: Required[str]
    platform: Required[str]
    handle: Required[str]
    text: Required[str]
    sentiment: float | None
    at: Required[str]
    case_id: str  # a case's, with the four below
    category: str | None
    priority: str | None
    order_id: str | None
    product_id: str | None


class CaseDoc(TypedDict, total=False):
    case_id: Required[str]
    channel: str | None
    category: str | None
    priority: str | None
    subject: str
    order_id: str | None
    product_id: str | None
    message_id: str | None
    opened_at: str | None
    first_response_at: str | None


class SurveyDoc(TypedDict, total=False):
    response_id: Required[str]
    survey_id: str | None
    nps: int | None
    csat: int | None
    text: str
    order_id: str | None
    case_id: str | None
    at: Required[str]


class ReviewDoc(TypedDict, total=False):
    review_id: Required[str]
    product_id: Required[str]
    rating: Required[int]
    text: str
    order_id: str | None
    at: Required[str]


class PaymentFailureDoc(TypedDict, total=False):
    payment_id: Required[str]
    order_id: str | None
    amount: Required[str]
    currency: Required[str]
    reason: Required[str]
    at: Required[str]


class OrderDoc(TypedDict, total=False):
    status: str
    status_at: str | None
    carrier: str | None
    tracking_number: str | None


class ConsentStateDoc(TypedDict, total=False):
    granted: bool


class RfmDoc(TypedDict, total=False):
    monetary: int
    score: str


class ProfileDoc(TypedDict, total=False):
    profile_id: Required[str]
    version: int
    identifiers: dict[str, list[str]]
    consent: dict[str, dict[str, ConsentStateDoc]]
    order_count: int
    total_spent: str
    currency: str | None
    last_order_at: str | None
    recent_views: list[ViewedDoc]
    cart: CartDoc
    open_complaints: list[ComplaintDoc]
    open_cases: list[CaseDoc]
    recent_surveys: list[SurveyDoc]
    recent_reviews: list[ReviewDoc]
    recent_payment_failures: list[PaymentFailureDoc]
    recent_orders: dict[str, OrderDoc]
    rfm: RfmDoc | None
