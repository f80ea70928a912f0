"""What the API's routers share: the process-wide resources and the token check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaProducer
from sqlalchemy import Engine

from crmhub.core.intake import GroupCommit
from crmhub.core.settings import Settings


@dataclass
class Resources:
    """What the API process opens once: each router builds its own service's store on ``engine``."""

    settings: Settings
    redis: Any
    engine: Engine
    producer: KafkaProducer
    intake: GroupCommit | None = None  # the collector's journal (embedded broker), else produce and wait


def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


_bearer = HTTPBearer(auto_error=False)


def _check_token(res: Resources, given: str | None) -> None:
    expected = res.settings.api_token.get_secret_value()
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "a valid API token is required: Authorization: Bearer <CRMHUB_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_token(
    res: Annotated[Resources, Depends(resources)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    _check_token(res, creds.credentials if creds else None)


def require_token_or_query(
    res: Annotated[Resources, Depends(resources)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None, Query(description="The API token, for browsers (EventSource sends no headers).")
    ] = None,
) -> None:
    _check_token(res, creds.credentials if creds else token)


Res = Annotated[Resources, Depends(resources)]
Authorized = Depends(require_token)
AuthorizedOrQuery = Depends(require_token_or_query)  # the dashboard's stream
