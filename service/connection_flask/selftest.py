"""``python -m connection_flask.selftest URL``: the Helm chart's ``helm test`` check.

Against the server at URL: ``/readyz`` answers 200, ``/metrics`` carries the request counter, and
a throwaway partition goes round publish -> lookup -> retract, after which it is gone (404).
The throwaway partition is retracted whatever happened. Writes send CONNECTION_FLASK_WRITE_TOKEN,
lookups CONNECTION_FLASK_READ_TOKEN (else the write token), as the pod's environment passes
them. Each step is printed; the first wrong answer ends the run with ``FAIL <step>`` on stderr
and exit status 1. Standard library only, and nothing written to disk: the pod runs it as the
image's non-root user on a read-only root filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

PASSED = "connection-flask helm test passed"
CONNECTION = {
    "uid": "helm-test-conn",
    "uri": "tcp://192.0.2.1:1234",
    "data_type": "HelmTest",
    "connection_type": 0,
}


class Failed(Exception):
    """A step did not answer as the contract says."""


class Client:
    def __init__(self, base_url: str, write_token: str, read_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = {"write": write_token, "read": read_token or write_token, "open": ""}

    def call(
        self, method: str, path: str, body: object = None, access: str = "read"
    ) -> tuple[int, str]:
        """(status, body text); ``access`` picks the token: write, read or open (none)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.tokens[access]:
            request.add_header("Authorization", "Bearer " + self.tokens[access])
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read().decode()
        except OSError as exc:  # refused, reset, timed out, name not resolved
            raise Failed(f"FAIL {method} {path}: {exc}") from exc


def expect(step: str, got: object, want: object) -> None:
    print(f"{step}: {got}", flush=True)
    if got != want:
        raise Failed(f"FAIL {step}: expected {want!r}, got {got!r}")


def uris(text: str) -> list[Any]:
    try:
        return [c["uri"] for c in json.loads(text)]
    except (ValueError, TypeError, KeyError) as exc:
        raise Failed(f"FAIL lookup: not a JSON array of connections: {text[:200]!r}") from exc


def check(client: Client, partition: str) -> None:
    expect("GET /readyz", client.call("GET", "/readyz", access="open")[0], 200)
    status, text = client.call("GET", "/metrics", access="open")
    expect("GET /metrics", status, 200)
    expect(
        "metrics has connection_flask_requests_total",
        "connection_flask_requests_total" in text,
        True,
    )
    print("throwaway partition:", partition, flush=True)
    published = {"partition": partition, "connections": [CONNECTION]}
    query = {"uid_regex": "helm-test-.*", "data_type": CONNECTION["data_type"]}
    lookup = "/getconnection/" + partition
    try:
        expect("publish", client.call("POST", "/publish", published, "write"), (200, "OK"))
        status, text = client.call("POST", lookup, query)
        expect("lookup status", status, 200)
        expect("lookup uris", uris(text), [CONNECTION["uri"]])
        retract = {"partition": partition, "connections": [{"connection_id": CONNECTION["uid"]}]}
        expect("retract", client.call("POST", "/retract", retract, "write")[0], 200)
        expect("lookup after retract", client.call("POST", lookup, query)[0], 404)
    finally:
        with contextlib.suppress(Failed):
            client.call("POST", "/retract-partition", {"partition": partition}, "write")


def main(argv: Sequence[str] = sys.argv[1:], env: Mapping[str, str] = os.environ) -> int:
    if len(argv) != 1:
        print("usage: python -m connection_flask.selftest http://HOST:PORT", file=sys.stderr)
        return 2
    client = Client(
        argv[0],
        env.get("CONNECTION_FLASK_WRITE_TOKEN", ""),
        env.get("CONNECTION_FLASK_READ_TOKEN", ""),
    )
    try:
        check(client, "helm-test-" + uuid.uuid4().hex[:8])
    except Failed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(PASSED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
