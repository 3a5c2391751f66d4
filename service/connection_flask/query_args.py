"""Query parameters -> one string per parameter given, or Invalid (400) naming the parameter.

The dump page (admin.py) and the admin API (admin_api.py) refuse the same three mistakes in the
same words and the same order: a parameter the endpoint does not take, then one given more than
once, then one longer than its length setting (reason ``too_long``, as a body's field too long is
in validation.py). What each value means is left to the endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

from werkzeug.datastructures import MultiDict

from connection_flask.errors import Invalid
from connection_flask.settings import Settings

_ENV = {f.name: f.metadata["env"] for f in fields(Settings)}


def single_values(
    args: MultiDict[str, str],
    takes: Sequence[str],
    settings: Settings,
    lengths: Mapping[str, str],
    *,
    endpoint: str,
) -> dict[str, str]:
    """The value of each parameter given, by name. ``takes`` is every parameter the endpoint
    accepts, listed in the refusal of any other; ``endpoint`` names it there ("GET /").
    ``lengths`` bounds some of them: parameter -> the Settings field of its longest value
    (``max_uid_length``), so the refusal names that field's environment variable."""
    for name in args:
        if name not in takes:
            raise Invalid(
                f"unknown query parameter {name!r}: {endpoint} takes {', '.join(takes) or 'none'}"
            )
    values: dict[str, str] = {}
    for name, given in args.lists():
        if len(given) > 1:
            raise Invalid(f"query parameter {name!r} is given {len(given)} times; give it once")
        values[name] = given[0]
    for name, setting in lengths.items():
        limit: int = getattr(settings, setting)
        if len(values.get(name, "")) > limit:
            raise Invalid(
                f"query parameter {name!r} is longer than {_ENV[setting]} ({limit})", "too_long"
            )
    return values
