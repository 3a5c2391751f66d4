"""Admin pages keep the old wording and escape every published value."""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.registry import Connection, Store
from connection_flask.settings import Settings
from tests.helpers import FakeClock, conn


def publish(client: FlaskClient, partition: str, *uids: str) -> None:
    client.post("/publish", json={"partition": partition, "connections": [conn(u) for u in uids]})


def test_dump_lists_partitions_and_strikes_expired_entries(
    client: FlaskClient, clock: FakeClock
) -> None:
    publish(client, "p", "old")
    clock.advance(10)
    publish(client, "p", "new")
    page = client.get("/").get_data(as_text=True)
    assert "<h1>Dump of configuration dictionary</h1>" in page
    assert "<strike>old</strike>" in page
    assert "<td" in page and ">new<" in page and "<strike>new</strike>" not in page
    assert "<h2>Server statistics</h2>" in page


def test_dump_of_empty_registry_says_none(client: FlaskClient) -> None:
    assert "<h2>Active partitions</h2><p>None</p>" in client.get("/").get_data(as_text=True)


def test_every_published_value_is_html_escaped(client: FlaskClient) -> None:
    evil = "<script>alert(1)</script>"
    # A partition cannot hold '/', so the partition's name carries the tag without one.
    partition = "<script>alert(1)"
    assert (
        client.post(
            "/publish",
            json={"partition": partition, "connections": [conn(evil, uri=evil, data_type=evil)]},
        ).status_code
        == 200
    )
    for path in ("/", "/stats"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/").get_data(as_text=True)


def test_stats_page_has_the_lines_scripts_grep_for(client: FlaskClient) -> None:
    publish(client, "p", "a")
    publish(client, "p", "b")
    client.post("/getconnection/p", json={"uid_regex": ".*", "data_type": "TPSet"})
    page = client.get("/stats").get_data(as_text=True)
    assert page.startswith("<h1>Connection server statistics</h1>")
    assert "<p>2 calls to publish in total time " in page
    assert "<p>1 calls to lookup in total time " in page
    assert "<p>Maximum number of partitions active = 1</p>" in page
    assert "<p>Maximum entries in partition p = 2</p>" in page


def test_reset_stats_returns_the_stats_then_resets_them(client: FlaskClient) -> None:
    publish(client, "p", "a")
    assert "<p>1 calls to publish" in client.get("/resetStats").get_data(as_text=True)
    assert "<p>0 calls to publish" in client.get("/stats").get_data(as_text=True)
    assert client.post("/getconnection/p", json={"uid_regex": "a", "data_type": "TPSet"}).get_json()


def test_reset_service_drops_every_partition(client: FlaskClient) -> None:
    publish(client, "p", "a")
    page = client.get("/resetService").get_data(as_text=True)
    assert "<p>1 calls to publish" in page
    r = client.post("/getconnection/p", json={"uid_regex": "a", "data_type": "TPSet"})
    assert r.status_code == 404


def test_purge_removes_expired_entries_now(client: FlaskClient, clock: FakeClock) -> None:
    publish(client, "p", "a", "b")
    clock.advance(10)
    publish(client, "p", "c")
    assert "Purged 2 expired entries" in client.get("/purge").get_data(as_text=True)
    assert "<td" in client.get("/").get_data(as_text=True)
    r = client.post("/getconnection/p", json={"uid_regex": ".*", "data_type": "TPSet"})
    assert [e["uid"] for e in r.get_json()] == ["c"]


# ----------------------------------------------------------------------------- bounded dump


def registry_of(client: FlaskClient) -> Store:
    registry = client.application.extensions["connection_flask"].registry
    assert isinstance(registry, Store)
    return registry


def fill(client: FlaskClient, partition: str, uids: list[str], **fields: str) -> None:
    registry_of(client).publish(
        partition,
        [
            Connection(u, fields.get("uri", "tcp://h:1"), fields.get("data_type", "T"), 0)
            for u in uids
        ],
    )


def dump_client(**settings: Any) -> FlaskClient:
    return create_app(Settings(debug_level=0, **settings), clock=FakeClock()).test_client()


def shown_uids(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r"<tr><td>(?:<strike>)?([^<]+)<", page)]


def link(page: str, text: str) -> str:
    """The target of the link whose text starts with ``text``."""
    found = re.findall(rf'<a href="([^"]*)">{re.escape(text)}', page)
    assert len(found) == 1, f"{len(found)} links '{text}...'"
    return html.unescape(found[0])


def get(client: FlaskClient, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    return r.get_data(as_text=True)


def test_dump_shows_a_page_of_entries_per_partition_and_links_to_the_next() -> None:
    client = dump_client(dump_page_size=3)
    fill(client, "p", [f"u{i}" for i in range(7)])
    fill(client, "q", ["a", "b"])
    page = get(client, "/")
    assert shown_uids(page) == ["u0", "u1", "u2", "a", "b"]
    assert "The next entries of q" not in page
    assert shown_uids(get(client, link(page, "The next entries of p"))) == ["u3", "u4", "u5"]


def test_following_the_next_links_shows_every_entry_of_a_partition_once() -> None:
    client = dump_client(dump_page_size=10)
    uids = sorted(f"app{i:03d}" for i in range(95))
    for data_type in ("T0", "T1", "T2"):  # the page merges the data_types' indexes
        fill(client, "p", uids[int(data_type[1]) :: 3], data_type=data_type)
    seen: list[str] = []
    url = "/?partition=p"
    for _ in range(20):
        page = get(client, url)
        seen += shown_uids(page)
        if "The next entries of p" not in page:
            break
        url = link(page, "The next entries of p")
    assert seen == uids


def test_dump_of_100k_entries_in_one_partition_is_one_page_under_1_mb() -> None:
    client = dump_client()
    fill(client, "big", [f"u{i:06d}" for i in range(100_000)])
    r = client.get("/")
    assert r.status_code == 200
    assert len(r.get_data()) < 1_000_000
    page = r.get_data(as_text=True)
    assert shown_uids(page) == [f"u{i:06d}" for i in range(100)]
    assert "<td>100000</td>" in page, "the overview gives the partition's size"
    following = get(client, link(page, "The next entries of big"))
    assert shown_uids(following) == [f"u{i:06d}" for i in range(100, 200)]


def test_dump_of_5000_partitions_stays_under_1_mb_and_links_onward() -> None:
    client = dump_client(max_partitions=10_000)
    names = [f"part{i:04d}" for i in range(5000)]
    for name in names:
        fill(client, name, [f"{name}-app{j:02d}" for j in range(20)])
    r = client.get("/")
    assert r.status_code == 200
    assert len(r.get_data()) < 1_000_000
    page = r.get_data(as_text=True)
    assert "more partitions not listed" in page
    assert "The page stops here to stay under 1 MB." in page
    assert '<a href="/stats">' in page, "the per-partition peaks go on at /stats"
    shown = re.findall(r"<h3>([^<]*)</h3>", page)
    assert shown == names[: len(shown)] and 100 < len(shown) < 5000
    onward = get(client, link(page, "Partitions after"))
    assert re.findall(r"<h3>([^<]*)</h3>", onward)[0] == names[len(shown)]


def test_dump_of_the_largest_values_allowed_stays_under_1_mb() -> None:
    client = dump_client()
    settings = Settings()
    nasty = "<&\"'"
    for k, char in enumerate((nasty, "\U0001d11e")):  # escaped to 6 bytes; 4 in UTF-8
        partition = (char * settings.max_partition_length)[: settings.max_partition_length]
        partition = partition[:-1] + str(k)
        uids = [
            (char * settings.max_uid_length)[: settings.max_uid_length - 3] + f"{i:03d}"
            for i in range(150)
        ]
        fill(client, partition, uids, uri="&" * settings.max_uri_length)
    r = client.get("/")
    assert r.status_code == 200
    assert len(r.get_data()) < 1_000_000
    page = r.get_data(as_text=True)
    assert 0 < len(shown_uids(page)) < 300
    following = get(client, link(page, "The next entries of"))
    assert shown_uids(following), "the link onward works with such names"


def test_dump_filters_by_partition() -> None:
    client = dump_client()
    fill(client, "p", ["a"])
    fill(client, "q", ["b"])
    page = get(client, "/?partition=q")
    assert shown_uids(page) == ["b"]
    assert "<h3>p</h3>" not in page


def test_dump_filters_by_uid_prefix_in_every_partition() -> None:
    client = dump_client()
    fill(client, "p", ["app1-x", "app10-x", "app2-x"])
    fill(client, "q", ["app1-y", "other"])
    fill(client, "r", ["other"])
    page = get(client, "/?uid=app1-")
    assert shown_uids(page) == ["app1-x", "app1-y"]
    assert "<h3>r</h3>" not in page, "partitions without a match are left out"
    assert shown_uids(get(client, "/?partition=p&uid=app1")) == ["app1-x", "app10-x"]


def test_dump_lists_partitions_after_a_cursor() -> None:
    client = dump_client()
    for name in ("a", "b", "c"):
        fill(client, name, ["x"])
    page = get(client, "/?partitions_after=a")
    assert re.findall(r"<h3>([^<]*)</h3>", page) == ["b", "c"]


def test_empty_query_values_filter_nothing() -> None:
    client = dump_client()
    fill(client, "p", ["a"])
    assert shown_uids(get(client, "/?partition=&uid=")) == ["a"]


def test_dump_escapes_names_in_text_and_encodes_them_in_links() -> None:
    client = dump_client(dump_page_size=1)
    name = 'a&b "c" <d>#?%+='
    fill(client, name, [name + "1", name + "2"])
    page = get(client, "/")
    assert "<d>" not in page
    assert html.escape(name) in page
    assert link(page, html.escape(name)) == "/?partition=" + quote(name, safe="")
    assert shown_uids(get(client, link(page, "The next entries of"))) == [name + "2"]


def test_filter_on_a_partition_that_is_not_held_is_404() -> None:
    client = dump_client()
    page = get(client, "/?partition=nope", 404)
    assert "No partition named nope is held." in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bogus=1", "unknown query parameter 'bogus'"),
        ("partition=a&partition=b", "'partition' is given 2 times"),
        ("after=x", "give 'partition' too"),
        ("partition=a&partitions_after=b", "not both"),
        ("partition=" + "x" * 257, "CONNECTION_FLASK_MAX_PARTITION_LENGTH (256)"),
        ("uid=" + "x" * 1025, "CONNECTION_FLASK_MAX_UID_LENGTH (1024)"),
    ],
)
def test_bad_query_parameters_are_400_saying_why(query: str, message: str) -> None:
    r = dump_client().get("/?" + query)
    assert r.status_code == 400
    assert message in r.get_json()["error"]


def test_dump_yields_to_other_requests_while_it_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    client = dump_client(max_partitions=10_000)
    for i in range(2000):
        fill(client, f"part{i:04d}", ["a", "b"])
    yields: list[float] = []
    monkeypatch.setattr(time, "sleep", yields.append)
    get(client, "/")
    assert len(yields) >= 100
