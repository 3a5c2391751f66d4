"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint, its limits the server's own.

The document is package data (openapi.json), written with the default limits so that it reads
as a whole on its own. Where a limit comes from a setting, the schema names the setting under
``x-limits`` (``{"maxLength": "max_uid_length"}``) and rendering writes the running server's
value over the default; an operation's ``x-token`` (``read`` or ``write``) becomes a bearer
``security`` requirement when the server runs with that token set. Rendered once per app.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from connection_flask import __version__
from connection_flask.settings import Settings
from connection_flask.state import state

bp = Blueprint("openapi", __name__)

DOCUMENT = "openapi.json"
SECURITY_SCHEME = "bearerAuth"
# Which setting holds the token an operation's x-token names.
TOKENS = {"read": "read_token", "write": "write_token"}
_CACHE = "connection_flask.openapi"


def template() -> dict[str, Any]:
    """The packaged document as written: default limits, ``x-limits`` and ``x-token`` kept."""
    text = resources.files("connection_flask").joinpath(DOCUMENT).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def document(settings: Settings) -> dict[str, Any]:
    """The document as a server running with ``settings`` answers requests."""
    doc: dict[str, Any] = _render(template(), settings)
    doc["info"]["version"] = __version__
    return doc


def _render(node: Any, settings: Settings) -> Any:
    if isinstance(node, list):
        return [_render(item, settings) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _render(value, settings) for key, value in node.items() if key != "x-limits"}
    for keyword, setting in node.get("x-limits", {}).items():
        out[keyword] = getattr(settings, setting)
    token = node.get("x-token")
    if token is not None and getattr(settings, TOKENS[token]):
        out["security"] = [{SECURITY_SCHEME: []}]
    return out


@bp.get("/openapi.json")
def openapi() -> Response:
    extensions = current_app.extensions
    body = extensions.get(_CACHE)
    if body is None:
        # Two first requests at once may both render; they store the same bytes.
        body = extensions[_CACHE] = orjson.dumps(document(state().settings))
    return Response(body, mimetype="application/json")
