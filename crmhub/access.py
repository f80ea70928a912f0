"""Scoped API tokens over HTTP (``admin``): create one (its secret shown once), list them, revoke one.
``crmhub tokens create/list/revoke`` does the same on the database directly (see crmhub/cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field, field_validator

from crmhub.core.tokens import SCOPES, TokenStore, parse_scopes
from crmhub.core.web import Admin, Res

router = APIRouter(tags=["access"], dependencies=[Admin])


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what uses it, e.g. 'support desk'.")
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), description=f"Among {', '.join(SCOPES)}.")

    @field_validator("scopes")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return sorted(parse_scopes(",".join(value)))


@router.get("/v1/tokens", summary="Every API token (never its secret), newest first")
def list_tokens(res: Res) -> list[dict[str, Any]]:
    return TokenStore(res.engine).list()


@router.post("/v1/tokens", status_code=201, summary="Make a scoped token; its secret is in this answer only")
def create_token(body: NewToken, res: Res) -> dict[str, Any]:
    token_id, secret = TokenStore(res.engine).create(body.name, frozenset(body.scopes), datetime.now(UTC))
    return {"token_id": token_id, "token": secret, "name": body.name, "scopes": body.scopes}


@router.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a token (at once, also its sessions)")
def revoke_token(token_id: str, res: Res) -> Response:
    if not TokenStore(res.engine).revoke(token_id, datetime.now(UTC)):
        raise HTTPException(404, f"no live token {token_id!r}")
    return Response(status_code=204)
