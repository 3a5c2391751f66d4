"""Request bodies: read whole, within CONNECTION_FLASK_MAX_BODY_BYTES and
CONNECTION_FLASK_BODY_TIMEOUT, with every framing error a 4xx.

Why not Werkzeug's ``request.get_data()`` with ``MAX_CONTENT_LENGTH``: that gives the 413 for a
declared length and a limit on chunked input, but not three things this needs the server's
stream for: a deadline on the whole read (408; Werkzeug has none), a chunk judged by its size
line before Gunicorn waits for all of it (a client announcing 2^68 bytes would otherwise get its
413 only at the deadline), and a 400 for a broken chunked encoding, which Gunicorn raises from
``read()`` and Werkzeug passes on as a 500. Its stream wrappers also cost a tenth of a publish.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connection_flask.errors import BodyTimeout, BodyTooLarge, Invalid

try:
    from gunicorn.http.body import ChunkedReader
except ImportError:  # served by another WSGI server: nothing of Gunicorn's to bound
    ChunkedReader = None


def read(environ: dict[str, Any], limit: int, deadline: float) -> bytes:
    """The whole body; BodyTooLarge past ``limit`` bytes, BodyTimeout past ``deadline``
    seconds, Invalid for a body whose framing is broken or that ends early."""
    length = _content_length(environ)
    chunked = length is None and bool(environ.get("wsgi.input_terminated"))
    if length is None and not chunked:
        return b""  # no Content-Length and not chunked: no body (RFC 9112 6.3)
    stream = environ["wsgi.input"]
    if length is not None and length > limit:
        _discard(environ, stream, length, limit)
        raise too_large(limit)
    if length == 0:
        return b""
    if chunked:
        _bound_chunks(stream, limit)
    try:
        with _deadline(environ, deadline):
            # A chunked body has no length to check up front: one byte past the limit tells
            # "exactly at the limit" from "too large".
            data = bytes(stream.read(limit + 1 if length is None else length))
    except ChunkTooLarge:
        raise too_large(limit) from None
    except (_Late, TimeoutError):
        raise BodyTimeout(
            f"request body not received within CONNECTION_FLASK_BODY_TIMEOUT ({deadline:g} s)"
        ) from None
    except Exception as exc:
        # Whatever the server raises while decoding the body (a chunk size that is not hex, a
        # chunk without its CRLF, the connection closed mid-chunk) means the body as sent
        # cannot be read; the class names differ between servers, the answer does not.
        raise Invalid(f"malformed request body: {_describe(exc)}", "bad_framing") from None
    if length is None and len(data) > limit:
        _discard(environ, stream, None, limit)
        raise too_large(limit)
    if length is not None and len(data) < length:
        raise Invalid(
            f"request body ended after {len(data)} of the {length} bytes its Content-Length "
            "announced",
            "bad_framing",
        )
    return data


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body larger than CONNECTION_FLASK_MAX_BODY_BYTES ({limit} bytes)")


# A client still sending a body we refused gets a connection reset instead of our 413 unless the
# body is read. Up to DISCARD_FACTOR times the limit is read and dropped, for at most
# DISCARD_SECONDS; past either bound the connection is cut.
DISCARD_FACTOR = 4
DISCARD_SECONDS = 2.0


def _discard(environ: dict[str, Any], stream: Any, declared: int | None, limit: int) -> None:
    most = DISCARD_FACTOR * limit
    if declared is not None and declared > most:
        return
    left = most if declared is None else declared
    try:
        with _deadline(environ, DISCARD_SECONDS):
            while left > 0 and (chunk := stream.read(min(left, 1 << 16))):
                left -= len(chunk)
    except Exception:
        return  # timed out, reset or broken framing: Gunicorn closes the connection


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        # Gunicorn refuses these itself; another server might pass them on.
        raise Invalid(f"invalid Content-Length {raw!r}", "bad_framing")
    return value


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ChunkTooLarge(Exception):
    """A chunk's declared size is past the body limit."""


class _Late(Exception):
    """Raised by gevent's timeout: the deadline passed while the body was being read."""


if ChunkedReader is not None:

    class _BoundedChunkedReader(ChunkedReader):  # type: ignore[misc]
        """Gunicorn's chunked reader, refusing a chunk larger than the body limit from its
        size line. Gunicorn reads a declared chunk whole before handing any of it on, so a
        client announcing ``fffffffffffffffff`` bytes would otherwise be waited for until the
        body deadline, and never get its 413."""

        def __init__(self, req: Any, unreader: Any, limit: int) -> None:
            self.body_limit = limit
            super().__init__(req, unreader)

        def parse_chunk_size(self, unreader: Any, data: Any = None) -> Any:
            size, rest = super().parse_chunk_size(unreader, data)
            if size > self.body_limit:
                raise ChunkTooLarge(size)
            return size, rest


def _bound_chunks(stream: Any, limit: int) -> None:
    # Gunicorn has no setting for this and builds its reader itself; the reader is swapped
    # before the first read, so no byte of the body has been consumed yet.
    reader: Any = getattr(stream, "reader", None)
    if ChunkedReader is not None and type(reader) is ChunkedReader:
        stream.reader = _BoundedChunkedReader(reader.req, reader.req.unreader, limit)


@contextmanager
def _deadline(environ: dict[str, Any], seconds: float) -> Iterator[None]:
    """Bound the read. Under gevent a timeout on the whole read, so a client trickling a byte
    a second is cut at the deadline; under threads (gthread, sync) each socket read, which is
    what a blocking socket offers without a second thread per request."""
    gevent = sys.modules.get("gevent")
    monkey = sys.modules.get("gevent.monkey")
    if gevent is not None and monkey is not None and monkey.is_module_patched("socket"):
        with gevent.Timeout(seconds, _Late):
            yield
        return
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        sock.settimeout(previous)
