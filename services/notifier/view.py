"""The notifier's typed view of a profile document: the fields its rules read, nothing more.

Profile changes arrive as JSON documents (``schemas.profile.Profile`` dumped in JSON mode), and so does the
profile service's cached copy. Validating each into the full pydantic model would cost more than the rules
themselves on every change, so the notifier reads the decoded document through these ``TypedDict``\\ s:
no copy and no validation at run time, but mypy checks every key and type the rules use. The keys are the
``Profile`` model's (``docs/profile.md``); amounts are strings and times ISO 8601 strings, as JSON has them.
"""

from __future__ import annotations

from typing import Required, TypedDict


class ComplaintDoc(TypedDict, total=False):
    message_id: Required[str]
    at: Required[str]


class CaseDoc(TypedDict, total=False):
    case_id: Required[str]
    opened_at: str | None


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


class RfmDoc(TypedDict, total=False):
    score: str


class ProfileDoc(TypedDict, total=False):
    profile_id: Required[str]
    version: int
    order_count: int
    total_spent: str
    currency: str | None
    open_complaints: list[ComplaintDoc]
    open_cases: list[CaseDoc]
    recent_surveys: list[SurveyDoc]
    recent_reviews: list[ReviewDoc]
    recent_payment_failures: list[PaymentFailureDoc]
    recent_orders: dict[str, OrderDoc]
    rfm: RfmDoc | None
