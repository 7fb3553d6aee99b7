"""Personal data on the API: erasure of a data subject, and what read paths show.

``POST /subjects/{subject_id}/erase`` destroys the subject's data keys (crypto-shredding,
ADR 0018); the audit trail records the call like every other change of state. Read views pass
their answers through :func:`shown`: callers with a plaintext role see personal values, others
the sealed tokens as stored; erased values show as erased to everyone who could read them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb.envelope import MAX_ID_CHARS
from esb.errors import InvalidRequest
from esb.views.http import json_response, principal

blueprint = Blueprint("personal")


async def shown(request: web.Request, app: Any, body: Any) -> Any:
    """``body`` as the caller may see it (a no-op when it holds no sealed value)."""
    who = principal(request)
    personal = app.runtime.personal_data
    if personal is None:
        return body
    return await personal.reveal_for(who.roles, who.tenant, body)


@blueprint.route("/subjects/{subject_id}/erase", name="erase_subject")
class EraseSubjectView(View):
    async def post(self, request: web.Request, subject_id: str) -> web.Response:
        who = principal(request)
        if len(subject_id) > MAX_ID_CHARS or not subject_id.isprintable():
            raise InvalidRequest(f"subject id must be at most {MAX_ID_CHARS} printable "
                                 "characters", parameter="subject_id")
        kids = await self.app.runtime.personal_data.keys.erase(who.tenant, subject_id)
        return json_response({
            "subject_id": subject_id,
            "erased_keys": len(kids),
            "erased_at": datetime.now(UTC).isoformat(timespec="milliseconds")
                                .replace("+00:00", "Z"),
        })
