"""Access over HTTP (``admin``): scoped tokens (create one, its secret shown once; list; revoke) and the
audit log. ``crmhub tokens …`` and ``crmhub audit export`` do the same on the database directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, field_validator

from crmhub.core.audit import MAX_PAGE, AuditLog
from crmhub.core.tokens import SCOPES, TokenStore, parse_scopes
from crmhub.core.web import Admin, Res, audit

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
def create_token(body: NewToken, request: Request, res: Res) -> dict[str, Any]:
    token_id, secret = TokenStore(res.engine).create(body.name, frozenset(body.scopes), datetime.now(UTC))
    audit(request, res, "token.create", detail=f"{token_id}: {','.join(body.scopes)}")
    return {"token_id": token_id, "token": secret, "name": body.name, "scopes": body.scopes}


@router.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a token (at once, also its sessions)")
def revoke_token(token_id: str, request: Request, res: Res) -> Response:
    if not TokenStore(res.engine).revoke(token_id, datetime.now(UTC)):
        raise HTTPException(404, f"no live token {token_id!r}")
    audit(request, res, "token.revoke", detail=token_id)
    return Response(status_code=204)


@router.get("/v1/audit", summary="The audit log, oldest first, a page after the id `after`")
def read_audit(
    request: Request,
    res: Res,
    after: int = Query(0, ge=0, lt=2**62, description="The last id seen (0: from the start)."),
    limit: int = Query(MAX_PAGE, ge=1, le=MAX_PAGE),
    profile_id: str | None = Query(None, max_length=64, description="Only what concerns this profile."),
) -> dict[str, Any]:
    entries = AuditLog(res.engine).page(after, limit, profile_id)
    audit(request, res, "audit.read", profile_id, f"{len(entries)} entries after {after}")
    return {"entries": entries, "next_after": entries[-1]["id"] if entries else after}
