"""Reading request bodies: limits, deadline and framing errors are 4xx (real Gunicorn readers where
framing is Gunicorn's)."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from connection_flask import body
from connection_flask.errors import Invalid, Rejected


def environ(data: bytes, length: int | None) -> dict[str, Any]:
    env: dict[str, Any] = {"wsgi.input": io.BytesIO(data)}
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    return env


def gunicorn_environ(raw: bytes) -> dict[str, Any]:
    """The environ pieces body.read uses, from Gunicorn's own parser reading ``raw``."""
    req = next(RequestParser(Config(), [raw], ("127.0.0.1", 1)))
    return {"wsgi.input": req.body, "wsgi.input_terminated": True}


def chunked(payload: bytes) -> bytes:
    return b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + payload


def status_of(env: dict[str, Any], limit: int = 100, deadline: float = 5.0) -> int:
    with pytest.raises(Rejected) as info:
        body.read(env, limit, deadline)
    return info.value.status


def test_body_of_announced_length_is_read_whole() -> None:
    assert body.read(environ(b'{"a":1}', 7), 100, 5.0) == b'{"a":1}'


def test_no_length_and_not_chunked_is_an_empty_body() -> None:
    assert body.read(environ(b"ignored", None), 100, 5.0) == b""


def test_announced_length_past_the_limit_is_413() -> None:
    assert status_of(environ(b"x" * 101, 101)) == 413


def test_body_ending_before_its_content_length_is_400() -> None:
    with pytest.raises(Invalid) as info:
        body.read(environ(b"abc", 10), 100, 5.0)
    assert (info.value.status, info.value.reason) == (400, "bad_framing")
    assert "3 of the 10 bytes" in info.value.message


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_unusable_content_length_is_400(value: str) -> None:
    env = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": value}
    assert status_of(env) == 400


def test_chunked_body_is_decoded() -> None:
    env = gunicorn_environ(chunked(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
    assert body.read(env, 100, 5.0) == b"abcde"


def test_chunked_body_exactly_at_the_limit_is_accepted() -> None:
    env = gunicorn_environ(chunked(b"5\r\nabcde\r\n0\r\n\r\n"))
    assert body.read(env, 5, 5.0) == b"abcde"


def test_chunks_adding_up_past_the_limit_are_413() -> None:
    env = gunicorn_environ(chunked(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"))
    assert status_of(env, limit=5) == 413


def test_chunk_size_that_is_not_hex_is_400() -> None:
    env = gunicorn_environ(chunked(b"ZZ\r\nabc\r\n0\r\n\r\n"))
    with pytest.raises(Invalid) as info:
        body.read(env, 100, 5.0)
    assert (info.value.status, info.value.reason) == (400, "bad_framing")
    assert "chunk size" in info.value.message.lower()


def test_truncated_chunked_body_is_400() -> None:
    assert status_of(gunicorn_environ(chunked(b"10\r\nabc"))) == 400


def test_chunk_larger_than_the_limit_is_413_from_its_size_line() -> None:
    # Only the size line and three bytes exist: reading the chunk would wait for 2^68 bytes.
    assert status_of(gunicorn_environ(chunked(b"fffffffffffffffff\r\nabc"))) == 413


def test_stalled_body_is_408_after_the_deadline_under_threads() -> None:
    server, client = socket.socketpair()
    try:
        client.sendall(b"abc")  # 3 of the 10 announced bytes, then nothing
        with server.makefile("rb") as stream:
            env = {"wsgi.input": stream, "CONTENT_LENGTH": "10", "gunicorn.socket": server}
            with pytest.raises(Rejected) as info:
                body.read(env, 100, 0.2)
        assert (info.value.status, info.value.reason) == (408, "body_timeout")
        assert server.gettimeout() is None  # the socket is left as it was found
    finally:
        server.close()
        client.close()
