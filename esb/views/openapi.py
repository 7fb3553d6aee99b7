"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document generated from :mod:`esb.api_spec`.

Public, like ``/health``: clients and fuzzers need the contract before they hold a token. Built
once per worker (the table is static), so serving it costs one cached byte string.
"""

from __future__ import annotations

import functools
import json

from aiohttp import web
from faust.web import Blueprint, View

from esb import api_spec

blueprint = Blueprint("openapi")


@functools.cache
def document_bytes() -> bytes:
    """The rendered document; generated on first request, not at import (keeps start-up lean)."""
    return json.dumps(api_spec.openapi_document(), separators=(",", ":")).encode()


@blueprint.route("/openapi.json", name="openapi")
class OpenApiView(View):
    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=document_bytes(), content_type="application/json")
