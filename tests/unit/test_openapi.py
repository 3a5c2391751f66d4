"""The OpenAPI document: valid OpenAPI 3.1, one operation for every route the app serves and no
more, limits and token requirements those of the settings it is rendered from, examples that fit
their schemas, served at /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask.testing import FlaskClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.core.result import Err

from connection_flask import openapi
from connection_flask.app import create_app
from connection_flask.settings import Settings

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The JSON admin API is built on another branch; until it is merged the app serves nothing
# under this prefix, and only then may the document name paths there that the app lacks.
ADMIN_API = "/api/v1/"


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in the document with its JSON pointer."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            yield from walk(value, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{pointer}/{i}")


def served_routes(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":  # Flask's own; the package has no static folder
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        # Flask answers HEAD and OPTIONS for every route by itself.
        routes |= {
            (path, method) for method in rule.methods or () if method not in ("HEAD", "OPTIONS")
        }
    return routes


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi.document(Settings())
    assert doc["openapi"].startswith("3.1.")
    loaded = schemathesis.openapi.from_dict(doc)
    loaded.validate()  # against the OpenAPI 3.1 meta-schema; raises on the first error
    problems = [str(r.err()) for r in loaded.get_all_operations() if isinstance(r, Err)]
    assert problems == []
    assert len(list(loaded.get_all_operations())) == len(list(operations(doc)))


def test_a_broken_document_fails_validation() -> None:
    """The validation above can fail: a response without its description is refused."""
    doc = openapi.document(Settings())
    del doc["components"]["responses"]["OK"]["description"]
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(doc).validate()


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    doc = openapi.document(Settings())
    schemas = [node["schema"] for _, node in walk(doc) if isinstance(node.get("schema"), dict)]
    schemas += doc["components"]["schemas"].values()
    assert len(schemas) > 20
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_the_app_serves_is_documented() -> None:
    documented = {(path, method) for path, method, _ in operations(openapi.document(Settings()))}
    undocumented = served_routes(Settings()) - documented
    assert undocumented == set(), "served but missing from openapi.json"


def test_every_documented_operation_is_served() -> None:
    served = served_routes(Settings())
    documented = {(path, method) for path, method, _ in operations(openapi.document(Settings()))}
    admin_api_merged = any(path.startswith(ADMIN_API) for path, _ in served)
    missing = {
        (path, method)
        for path, method in documented - served
        if admin_api_merged or not path.startswith(ADMIN_API)
    }
    assert missing == set(), "in openapi.json but not served"


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for _, _, op in operations(openapi.document(Settings()))]
    assert len(ids) == len(set(ids))


def test_the_packaged_document_states_the_default_limits() -> None:
    defaults = Settings()
    limited = [node for _, node in walk(openapi.template()) if "x-limits" in node]
    assert len(limited) >= 10
    for node in limited:
        for keyword, setting in node["x-limits"].items():
            assert node[keyword] == getattr(defaults, setting), (keyword, setting)


def test_the_limits_are_the_settings_the_document_is_rendered_from() -> None:
    settings = Settings(
        max_connections_per_publish=3,
        max_uid_length=11,
        max_uri_length=12,
        max_data_type_length=13,
        max_partition_length=14,
        max_regex_length=15,
    )
    rendered = dict(walk(openapi.document(settings)))
    checked = 0
    for pointer, node in walk(openapi.template()):
        for keyword, setting in node.get("x-limits", {}).items():
            assert rendered[pointer][keyword] == getattr(settings, setting), pointer
            assert "x-limits" not in rendered[pointer]
            checked += 1
    assert checked >= 10
    connection = rendered["/components/schemas/Connection/properties"]
    assert connection["uid"]["maxLength"] == 11
    assert connection["uri"]["maxLength"] == 12


@pytest.mark.parametrize(
    ("write_token", "read_token"), [("", ""), ("w", ""), ("", "r"), ("w", "r")]
)
def test_an_operation_asks_for_a_bearer_token_exactly_when_the_server_wants_one(
    write_token: str, read_token: str
) -> None:
    """Each operation without an Authorization header: 401 if and only if it lists security."""
    settings = Settings(write_token=write_token, read_token=read_token)
    client = create_app(settings).test_client()
    served = served_routes(settings)
    for path, method, op in operations(openapi.document(settings)):
        if (path, method) not in served:
            continue  # the admin API, before it is merged
        status = client.open(path.replace("{partition}", "ccTest"), method=method).status_code
        assert (status == 401) == ("security" in op), (method, path, status)


def test_the_bearer_scheme_is_declared_even_without_tokens() -> None:
    schemes = openapi.document(Settings())["components"]["securitySchemes"]
    assert schemes[openapi.SECURITY_SCHEME] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes[openapi.SECURITY_SCHEME]["description"],
    }


def test_every_example_fits_its_schema() -> None:
    doc = openapi.document(Settings())
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    examples = [(p, node) for p, node in walk(doc) if "example" in node and "schema" in node]
    assert len(examples) >= 6
    for pointer, node in examples:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"urn:openapi#{pointer}/schema"}, registry=registry
        )
        errors = [e.message for e in validator.iter_errors(node["example"])]
        assert errors == [], pointer


def test_openapi_json_serves_the_document_of_the_apps_settings() -> None:
    settings = Settings(max_uid_length=77)
    response = create_app(settings).test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == openapi.document(settings)


def test_openapi_json_is_rendered_once(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient
) -> None:
    renders: list[Settings] = []
    real = openapi.document

    def counting(settings: Settings) -> dict[str, Any]:
        renders.append(settings)
        return real(settings)

    monkeypatch.setattr(openapi, "document", counting)
    first = client.get("/openapi.json").data
    second = client.get("/openapi.json").data
    assert first == second
    assert len(renders) == 1


def test_the_document_carries_the_package_version() -> None:
    from connection_flask import __version__

    assert openapi.document(Settings())["info"]["version"] == __version__


def test_an_unknown_query_parameter_on_a_get_gets_a_documented_status() -> None:
    doc = openapi.document(Settings())
    client = create_app(Settings()).test_client()
    for path, method, operation in operations(doc):
        if method != "GET":
            continue
        status = client.get(path.replace("{partition}", "p") + "?zz=1").status_code
        assert str(status) in operation["responses"], f"GET {path}?zz=1 answered {status}"
