"""Admin pages keep the old wording and escape every published value."""

from __future__ import annotations

from flask.testing import FlaskClient

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
