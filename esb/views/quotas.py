"""Quotas of the caller's tenant: read them, change them (the route table says which roles)."""

from __future__ import annotations

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import ValidationError

from esb.quotas import QuotaUpdate
from esb.views.http import json_response, principal, read_json, validation_problem

blueprint = Blueprint("quotas")


@blueprint.route("/quotas", name="quotas")
class QuotasView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        return json_response(self.app.runtime.quotas.document(who.tenant).model_dump())

    async def put(self, request: web.Request) -> web.Response:
        who = principal(request)
        try:
            update = QuotaUpdate.model_validate(await read_json(request, 16384))
        except ValidationError as exc:
            raise validation_problem(exc) from None
        book = self.app.runtime.quotas
        await book.update(who.tenant, update, user=who.subject)
        return json_response(book.document(who.tenant).model_dump())
