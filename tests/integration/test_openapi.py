"""schemathesis against a live Gunicorn server: every operation of /openapi.json, driven with
generated requests; a 5xx, or an answer whose status, Content-Type, body or headers the document
does not allow, fails the test. Bounded (few examples per operation, derandomized) so that
`make test` stays short."""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import HealthCheck
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connection_flask import openapi
from connection_flask.settings import Settings
from tests.integration.conftest import BIN, Server, Starter

pytestmark = pytest.mark.integration

# Limits smaller than the defaults: the document must follow the server's settings, and small
# limits let the generator reach them (and the 429s of a full registry) in a short run.
SERVER_ENV = {
    "CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH": "8",
    "CONNECTION_FLASK_MAX_UID_LENGTH": "64",
    "CONNECTION_FLASK_MAX_URI_LENGTH": "128",
    "CONNECTION_FLASK_MAX_DATA_TYPE_LENGTH": "32",
    "CONNECTION_FLASK_MAX_PARTITION_LENGTH": "32",
    "CONNECTION_FLASK_MAX_REGEX_LENGTH": "64",
    "CONNECTION_FLASK_MAX_PARTITIONS": "16",
    "CONNECTION_FLASK_MAX_ENTRIES": "64",
    "CONNECTION_FLASK_DEBUG": "0",
    "CONNECTION_FLASK_ACCESS_LOG": "",
}
# Tokens set: every operation that needs one must answer the generated requests (which carry
# none or a made-up one) with the documented 401 and its WWW-Authenticate header.
TOKEN_ENV = {
    **SERVER_ENV,
    "CONNECTION_FLASK_WRITE_TOKEN": "openapi-test-write",
    "CONNECTION_FLASK_READ_TOKEN": "openapi-test-read",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Served by the JSON admin API (branch i15-adminapi). Until it is merged these paths answer 404
# here; the operations under it run as soon as the server serves /api/v1/partitions.
ADMIN_API = "/api/v1/"
REQUEST_TIMEOUT = 15.0


def settings(env: dict[str, str]) -> Settings:
    # The server inherits this process's environment, so the document is rendered from it too.
    return Settings.from_env({**os.environ, **env})


def bounded(env: dict[str, str], max_examples: int) -> schemathesis.BaseSchema:
    """The document a server started with ``env`` serves, set for a short reproducible run."""
    loaded = schemathesis.openapi.from_dict(openapi.document(settings(env)))
    loaded.config.generation.update(max_examples=max_examples, deterministic=True, database="none")
    # Derandomized, the same data is drawn every run, so Hypothesis's other health checks pass or
    # fail for good; how long drawing takes depends on how busy the machine is.
    loaded.config.update(suppress_health_check=[HealthCheck.too_slow])
    return loaded


schema = bounded(SERVER_ENV, 50)
secured = bounded(TOKEN_ENV, 5)

WAIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?")
LONGEST_WAIT = 1.0  # seconds


@schema.hook("map_query")
def _short_waits(context: schemathesis.HookContext, query: dict[str, Any] | None) -> Any:
    """A blocking query (``index`` and ``wait``) may wait as long as it is told; a generated
    ``wait=9999m`` on a partition that does not change would hold the run for days. Waits the
    document allows are cut to LONGEST_WAIT, keeping their form; others go as generated."""
    if not isinstance(query, dict):
        return query  # an operation without query parameters
    match = WAIT.fullmatch(str(query.get("wait", "")))
    if match:
        seconds = float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2] or "s"]
        if seconds > LONGEST_WAIT:
            query["wait"] = f"{LONGEST_WAIT:g}s"
    return query


@schemathesis.deserializer("text/plain", "text/html")
def _text(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> str:
    """Plain text and HTML bodies are checked against their schemas too (the "OK" of a publish,
    the headings scripts grep); schemathesis would otherwise skip them."""
    return response.text


def start(starter: Starter, env: dict[str, str]) -> Server:
    return starter([str(BIN / "connection-flask"), "--no-control-socket"], env=env)


@pytest.fixture(scope="module")
def live(start_module_server: Starter) -> Server:
    return start(start_module_server, SERVER_ENV)


@pytest.fixture(scope="module")
def live_with_tokens(start_module_server: Starter) -> Server:
    return start(start_module_server, TOKEN_ENV)


@pytest.fixture(scope="module")
def session() -> requests.Session:
    return requests.Session()


@functools.cache
def serves_admin_api(url: str) -> bool:
    return requests.get(url + ADMIN_API + "partitions", timeout=REQUEST_TIMEOUT).status_code != 404


def call_and_validate(case: schemathesis.Case, server: Server, session: requests.Session) -> None:
    if case.operation.path.startswith(ADMIN_API) and not serves_admin_api(server.url):
        pytest.skip(f"this server does not serve {ADMIN_API} yet (the admin API is not merged)")
    case.call_and_validate(
        base_url=server.url, session=session, checks=CHECKS, timeout=REQUEST_TIMEOUT
    )


@schema.parametrize()
def test_every_answer_matches_the_document(
    case: schemathesis.Case, live: Server, session: requests.Session
) -> None:
    call_and_validate(case, live, session)


@secured.parametrize()
def test_with_tokens_set_every_answer_matches_the_document(
    case: schemathesis.Case, live_with_tokens: Server, session: requests.Session
) -> None:
    call_and_validate(case, live_with_tokens, session)


def test_the_live_server_serves_the_document_under_test(live: Server) -> None:
    response = requests.get(live.url + "/openapi.json", timeout=REQUEST_TIMEOUT)
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == openapi.document(settings(SERVER_ENV))
