"""A journey's definition: frozen pydantic models, checked entirely when the journey is defined.

Everything that can be wrong is found here, never while a customer is in the journey: unknown step
targets and jumps backwards (a loop without a wait would never stop), conditions that do not compile in
the segment language (an unknown field, a type mismatch), unknown channels and consent channels, bad
durations and times, template syntax errors. :mod:`.catalog` reads them from YAML and names the journey
and the step in the error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    field_validator,
    model_validator,
)

from schemas.outputs import AlertKind
from services.notifier.journeys.parsing import (
    ConsentChannel,
    Name,
    PositiveDuration,
    ProfileCondition,
    Reentry,
    Template,
    TimeOfDay,
    ValueExpression,
    WaitLength,
)
from services.notifier.journeys.triggers import ItemsTrigger, ProfileTrigger, SegmentTrigger, Trigger, known_event_type

KINDS = get_args(AlertKind)  # "journey": a message of its own, not one of the notifier's alerts


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class WaitStep(_Frozen):
    """Wait a duration, or until a time of day in the customer's zone (both: the duration, then the time).
    The duration may be an expression computing it (``vars.sla``: a duration like 15m, or seconds). It
    counts from when the step is reached, or with ``since: trigger`` from the trigger's time (the cart's
    last change, the complaint): one already past ends at once, and the next step runs on the customer
    read afresh."""

    name: Name
    wait: WaitLength | None = None
    until: TimeOfDay | None = None
    since: Literal["step", "trigger"] = "step"

    @model_validator(mode="after")
    def _something(self) -> WaitStep:
        if self.wait is None and self.until is None:
            raise ValueError("a wait step needs wait (a duration) or until (a time of day)")
        return self


class BranchStep(_Frozen):
    """Go to ``then`` when the condition holds for the customer now, else to ``otherwise`` (the next step
    when not given)."""

    name: Name
    branch: ProfileCondition
    then: Name
    otherwise: Name | None = Field(None, alias="else")


class SetStep(_Frozen):
    """Compute values the later steps read as ``vars`` (in order: a value sees the ones before it), kept
    with the enrollment: a priority from the customer and the trigger, the wait it calls for."""

    name: Name
    values: dict[str, ValueExpression] = Field(alias="set", min_length=1)


class SendStep(_Frozen):
    """Send a message through a kind of sink (``alert``: as an alert, to the topic and every sink its kind
    is routed to, docs/alerts.md#sinks-and-routes). ``consent``: the customer's channel whose consent it needs (``any``:
    the first channel consented to with an address; None: a message to the team, which needs none and
    knows no quiet hours or caps). ``details``: expressions whose values the message carries beside its
    text (an alert's details)."""

    name: Name
    send: Literal["webhook", "slack", "email", "topic", "alert"]  # a Channel, or alert
    kind: str = "journey"
    template: Template
    details: dict[str, ValueExpression] = Field(default_factory=dict)
    consent: ConsentChannel | None = None
    without_consent: Literal["skip", "internal"] = "skip"  # internal: to the team instead, as alerts do today
    throttled: bool = True  # a message needing consent waits out quiet hours and counts towards the cap

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown message kind {value!r} (one of {', '.join(KINDS)})")
        return value


class UpdateStep(_Frozen):
    """Add a tag (the profile's traits.tags) or set a trait."""

    name: Name
    update: Literal["tag", "trait"]
    tag: str | None = None
    trait: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _what(self) -> UpdateStep:
        if (self.update == "tag") != (self.tag is not None) or (self.update == "trait") != (self.trait is not None):
            raise ValueError("update: tag needs tag: <name>; update: trait needs trait: <name> (and value)")
        return self


class ExitStep(_Frozen):
    name: Name
    exit: str = "exit_step"  # the reason counted


_STEP_KEYS_MESSAGE = "a step needs one of wait, until, branch, set, send, update, exit"


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    keys = {"wait": "WaitStep", "until": "WaitStep", "branch": "BranchStep", "send": "SendStep"}
    keys |= {"set": "SetStep", "update": "UpdateStep", "exit": "ExitStep"}
    return next((kind for key, kind in keys.items() if isinstance(value, dict) and key in value), None)


AnyStep = WaitStep | BranchStep | SetStep | SendStep | UpdateStep | ExitStep
Step = Annotated[
    Annotated[WaitStep, Tag("WaitStep")]
    | Annotated[BranchStep, Tag("BranchStep")]
    | Annotated[SetStep, Tag("SetStep")]
    | Annotated[SendStep, Tag("SendStep")]
    | Annotated[UpdateStep, Tag("UpdateStep")]
    | Annotated[ExitStep, Tag("ExitStep")],
    Discriminator(_step_kind, custom_error_type="step", custom_error_message=_STEP_KEYS_MESSAGE),
]


class EventExit(_Frozen):
    """Leave on an event of this type; with ``match``, only one whose property equals the trigger's."""

    event: Annotated[str, AfterValidator(known_event_type)]
    match: str | None = None


class ExitCriteria(_Frozen):
    """Re-checked before every step (and on every event, for ``events``)."""

    when: tuple[ProfileCondition, ...] = ()  # any of these holding for the customer: exit
    ordered_since_entry: bool = False
    left_segment: bool = False  # the trigger's segment (a segment-entered trigger)
    left_trigger: bool = False  # a profile trigger's occurrence gone: the cart changed, the complaint answered
    consent_withdrawn: bool = False  # for a channel the journey's messages need
    events: tuple[EventExit, ...] = ()


class Goal(_Frozen):
    """A conversion: an event of this type within ``within`` of the first message sent."""

    event: Annotated[str, AfterValidator(known_event_type)]
    within: PositiveDuration
    revenue: tuple[str, ...] = ("total", "revenue")  # the first of these properties present is the amount


class QuietHours(_Frozen):
    start: TimeOfDay
    end: TimeOfDay


class FrequencyCap(_Frozen):
    messages: PositiveInt
    per: PositiveDuration


class Policy(_Frozen):
    """The rules for messages to customers, across journeys: quiet hours in the customer's zone (the
    profile's, else ``timezone``) and a cap of messages per period."""

    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    cap: FrequencyCap | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Journey(_Frozen):
    id: Name
    name: str = ""
    version: PositiveInt = 1
    status: Literal["active", "paused"] = "active"
    trigger: Trigger
    reentry: Reentry = "never"  # or restart, parallel, or a duration (see parsing.Reentry)
    exit: ExitCriteria = ExitCriteria()
    goal: Goal | None = None
    policy: Policy = Policy()
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Journey:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(
                f"step names must be unique: {', '.join(sorted({n for n in names if names.count(n) > 1}))}"
            )
        for i, step in enumerate(self.steps):
            if isinstance(step, BranchStep):
                for target in filter(None, (step.then, step.otherwise)):
                    _check_target(step.name, target, names, i)
        if self.exit.left_segment and not isinstance(self.trigger, SegmentTrigger):
            raise ValueError("exit left_segment needs a segment trigger")
        if self.exit.left_trigger and not isinstance(self.trigger, ProfileTrigger | ItemsTrigger):
            raise ValueError("exit left_trigger needs a profile or items trigger")
        return self

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.name == name)

    def consent_channels(self) -> frozenset[str]:
        """The customer channels the journey's messages need consent for."""
        return frozenset(s.consent for s in self.steps if isinstance(s, SendStep) and s.consent)


def _check_target(step: str, target: str, names: list[str], at: int) -> None:
    if target not in names:
        raise ValueError(f"step {step!r} goes to unknown step {target!r} (steps: {', '.join(names)})")
    if names.index(target) <= at:
        raise ValueError(f"step {step!r} goes back to {target!r}: branches only go forward")
