"""auth.py decides who may call what (the tokens on the wire: test_hardening_limits)."""

from __future__ import annotations

from flask import Response

from connection_flask import auth
from connection_flask.app import create_app
from connection_flask.settings import Settings

WRITE = "w-" + "a" * 30
READ = "r-" + "b" * 30
BOTH = Settings(debug_level=0, write_token=WRITE, read_token=READ)


def test_every_endpoint_is_open_a_read_or_a_write_and_only_one() -> None:
    endpoints = set(create_app(Settings()).view_functions)
    assert endpoints == auth.OPEN | auth.READS | auth.WRITES
    assert not (auth.OPEN & auth.READS or auth.OPEN & auth.WRITES or auth.READS & auth.WRITES)


def test_an_endpoint_nobody_classified_needs_the_read_token() -> None:
    app = create_app(BOTH)
    app.add_url_rule("/new-page", "new_page", lambda: Response("new"))
    client = app.test_client()
    assert client.get("/new-page").status_code == 401
    assert client.get("/new-page", headers={"Authorization": f"Bearer {READ}"}).status_code == 200


def test_unknown_routes_and_methods_answer_as_without_tokens() -> None:
    client = create_app(BOTH).test_client()
    assert client.get("/nope").status_code == 404
    assert client.get("/publish").status_code == 405


def test_options_is_answered_without_a_token_as_before() -> None:
    client = create_app(BOTH).test_client()
    r = client.options("/publish")
    assert r.status_code == 200
    assert "POST" in r.headers["Allow"]


def test_the_write_token_under_another_scheme_is_refused() -> None:
    client = create_app(BOTH).test_client()
    r = client.get("/purge", headers={"Authorization": f"Basic {WRITE}"})
    assert r.status_code == 401
    assert r.get_json()["error"] == auth.WRITE_REFUSED
