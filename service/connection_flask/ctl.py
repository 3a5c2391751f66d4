"""``connection-flask-ctl``: the registry from a shell, for people (tables) and scripts (--json).

Built on connection_flask.client; the commands that show what the registry holds (partitions,
dump, watch) use the JSON admin API (/api/v1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from connection_flask.client import (
    Connection,
    NotFound,
    Refused,
    RegistryClient,
    RegistryError,
    Snapshot,
)

SERVER_ENV = "CONNECTION_FLASK_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:5000"

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_REFUSED = 0, 1, 2, 3, 4
# "\b" keeps click from rewrapping the paragraph after it: one exit code per line.
EXIT_CODES = f"""\b
Exit codes:
  {EXIT_OK}  done
  {EXIT_NOT_FOUND}  not found: unknown partition or uid, a lookup that matched nothing
  {EXIT_USAGE}  bad usage
  {EXIT_UNAVAILABLE}  server unreachable, timed out, not ready, or a 5xx
  {EXIT_REFUSED}  refused by the server: another 4xx (bad input, token, limit)

The write token is read from CONNECTION_FLASK_WRITE_TOKEN, the read token from
CONNECTION_FLASK_READ_TOKEN."""

app = typer.Typer(
    help="Publish, look up, retract and watch connections in a connection-flask registry.",
    epilog=EXIT_CODES,
    rich_markup_mode=None,  # help text printed as written: the exit codes stay one per line
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
)

Partition = Annotated[
    str, typer.Argument(metavar="PARTITION", help="The partition (session) name.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
UidRegex = Annotated[str, typer.Option("--uid-regex", "-u", help="Only uids matching this.")]
DataType = Annotated[str, typer.Option("--data-type", "-t", help="Only this data_type.")]
CONNECTION_HEADERS = ("UID", "URI", "DATA_TYPE", "CONNECTION_TYPE", "CAPACITY")


@app.callback()
def options(
    ctx: typer.Context,
    *,
    server: Annotated[
        str, typer.Option("--server", "-s", envvar=SERVER_ENV, help="The registry's address.")
    ] = DEFAULT_SERVER,
    timeout: Annotated[float, typer.Option(help="Seconds each request may take.")] = 2.0,
    retries: Annotated[int, typer.Option(help="Retries when there is no answer or a 503.")] = 2,
) -> None:
    ctx.obj = (server, timeout, retries)


def client(ctx: typer.Context, partition: str | None = None) -> RegistryClient:
    server, timeout, retries = ctx.obj
    made = RegistryClient(server, partition, timeout=timeout, retries=retries)
    ctx.call_on_close(made.close)
    return made


@app.command()
def publish(
    ctx: typer.Context,
    *,
    partition: Partition,
    uid: Annotated[str | None, typer.Argument(metavar="UID", help="uid of one connection.")] = None,
    uri: Annotated[
        str | None, typer.Argument(metavar="URI", help="Its uri, e.g. tcp://host:port.")
    ] = None,
    data_type: Annotated[str, typer.Option("--data-type", "-t")] = "",
    connection_type: Annotated[int, typer.Option(help="0 send/receive, 1 pub/sub.")] = 0,
    capacity: int = 0,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="JSON: a list of connections or a publish body ('-': stdin)."
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Publish one connection (UID URI -t TYPE) or those of a JSON file, once."""
    if file is not None and uid is None:
        conns = read_connections(file)
    elif file is None and uid is not None and uri is not None and data_type:
        conns = [Connection(uid, uri, data_type, connection_type, capacity)]
    else:
        # typer.BadParameter: typer carries its own click, whose usage errors exit 2.
        raise typer.BadParameter("give either UID URI --data-type TYPE, or --file")
    client(ctx, partition).publish(conns)
    say(
        as_json,
        {"partition": partition, "published": len(conns)},
        lambda: f"published {len(conns)} connection(s) to {partition}",
    )


@app.command()
def lookup(
    ctx: typer.Context,
    *,
    partition: Partition,
    uid_regex: Annotated[
        str, typer.Argument(metavar="UID_REGEX", help="Regular expression the whole uid matches.")
    ],
    data_type: Annotated[str, typer.Argument(metavar="DATA_TYPE", help="The exact data_type.")],
    wait: Annotated[float, typer.Option(help="Seconds to keep asking while none match.")] = 0.0,
    as_json: JsonOut = False,
) -> None:
    """Live connections whose uid matches UID_REGEX, of DATA_TYPE (exit 1 if none)."""
    found = client(ctx, partition).lookup(uid_regex, data_type, wait=wait)
    say(
        as_json,
        [c.to_wire() for c in found],
        lambda: found and table(CONNECTION_HEADERS, rows(found)),
    )
    if not found:
        fail(EXIT_NOT_FOUND, f"nothing in {partition} matches {uid_regex!r} of {data_type!r}")


@app.command()
def retract(
    ctx: typer.Context,
    *,
    partition: Partition,
    uids: Annotated[list[str], typer.Argument(metavar="UID", help="uids to remove.")],
    data_type: Annotated[str | None, typer.Option("--data-type", "-t")] = None,
    as_json: JsonOut = False,
) -> None:
    """Remove connections by uid (exit 1 if some were not held: the others are removed)."""
    held = client(ctx, partition).retract(uids, data_type=data_type)
    say(
        as_json,
        {"partition": partition, "retracted": uids, "all_held": held},
        lambda: held and f"retracted {len(uids)} uid(s) from {partition}",
    )
    if not held:
        fail(EXIT_NOT_FOUND, f"{partition} or some of the uids were not held (the rest are gone)")


@app.command("retract-partition")
def retract_partition(
    ctx: typer.Context, *, partition: Partition, as_json: JsonOut = False
) -> None:
    """Remove a partition with all its entries (exit 1 if it was not held)."""
    held = client(ctx, partition).retract_partition()
    say(as_json, {"partition": partition, "held": held}, lambda: held and f"retracted {partition}")
    if not held:
        fail(EXIT_NOT_FOUND, f"partition {partition} was not held")


@app.command()
def partitions(ctx: typer.Context, *, as_json: JsonOut = False) -> None:
    """Every partition held, with its live and expired entry counts."""
    found = client(ctx).partitions()
    body = [(p.name, p.live, p.expired) for p in found]
    say(as_json, [asdict(p) for p in found], lambda: table(("PARTITION", "LIVE", "EXPIRED"), body))


@app.command()
def dump(
    ctx: typer.Context,
    *,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="PARTITION", help="Partitions (default: all)."),
    ] = None,
    uid_regex: UidRegex = "",
    data_type: DataType = "",
    as_json: JsonOut = False,
) -> None:
    """Every entry of the partitions, expired ones too, with its age."""
    registry = client(ctx)
    chosen = names or [p.name for p in registry.partitions()]
    snaps = [registry.connections(n, uid_regex=uid_regex, data_type=data_type) for n in chosen]
    say(as_json, [s.to_wire() for s in snaps], lambda: "\n\n".join(map(show, snaps)))


@app.command()
def watch(
    ctx: typer.Context,
    *,
    partition: Partition,
    uid_regex: UidRegex = "",
    data_type: DataType = "",
    wait: Annotated[float, typer.Option(help="Seconds each blocking query waits.")] = 30.0,
    count: Annotated[int, typer.Option(help="Stop after this many states (0: never).")] = 0,
    as_json: JsonOut = False,
) -> None:
    """Print the partition's state, then each change to it as it happens (--json: one JSON
    object per line). Ctrl-C stops it."""
    states = client(ctx).watch(partition, uid_regex=uid_regex, data_type=data_type, wait=wait)
    try:
        for n, snap in enumerate(states, 1):
            say(as_json, snap.to_wire(), lambda s=snap: show(s) + "\n", compact=True)
            if n == count:
                return
    except KeyboardInterrupt:
        return


@app.command()
def health(ctx: typer.Context, *, as_json: JsonOut = False) -> None:
    """Whether the server is alive (/healthz) and ready (/readyz): exit 3 unless both 200."""
    registry = client(ctx)
    status = {path: registry.probe("/" + path) for path in ("healthz", "readyz")}
    ready = all(s == 200 for s in status.values())
    answers = [(path, s if s is not None else "no answer") for path, s in status.items()]
    say(as_json, {**status, "ready": ready}, lambda: table(("ENDPOINT", "STATUS"), answers))
    if not ready:
        fail(EXIT_UNAVAILABLE, f"{registry.base_url} is not ready")


# ------------------------------------------------------------------------------------ output


def say(as_json: bool, data: Any, text: Any, *, compact: bool = False) -> None:
    """``data`` as JSON, or ``text()`` for people (a callable: tables are built only if shown;
    nothing when it is empty, so that a failure says only what failed, on stderr)."""
    if as_json:
        typer.echo(json.dumps(data, indent=None if compact else 2))
    elif shown := text():
        typer.echo(shown)
    sys.stdout.flush()  # watch: each state as it comes, through a pipe too


def fail(code: int, message: str) -> None:
    typer.echo(f"connection-flask-ctl: {message}", err=True)
    raise typer.Exit(code)


def table(headers: Sequence[str], body: Iterable[Sequence[object]]) -> str:
    cells = [list(headers), *([str(c) for c in row] for row in body)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def rows(conns: Iterable[Connection]) -> list[tuple[object, ...]]:
    return [(c.uid, c.uri, c.data_type, c.connection_type, c.capacity) for c in conns]


def show(snap: Snapshot) -> str:
    if not snap.exists:
        return f"partition {snap.partition} (index {snap.index}): not held"
    title = f"partition {snap.partition} (index {snap.index}): {len(snap.connections)} entries"
    body = [
        (*row, f"{c.age_seconds:.1f}", "yes" if c.expired else "")
        for c, row in zip(snap.connections, rows(snap.connections), strict=True)
    ]
    return title + "\n" + table((*CONNECTION_HEADERS, "AGE_S", "EXPIRED"), body)


def read_connections(file: Path) -> list[Connection]:
    """The connections of a JSON file: a list of connection objects, or a publish body."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        data = json.loads(text)
        items = data["connections"] if isinstance(data, dict) else data
        return [Connection.from_wire(c) for c in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from exc


def main() -> None:
    """The console script: RegistryErrors become a message on stderr and their exit code."""
    try:
        app()
    except NotFound as exc:
        code, message = EXIT_NOT_FOUND, exc.message
    except Refused as exc:
        code, message = EXIT_REFUSED, exc.message
    except RegistryError as exc:  # Unavailable, or an answer the client cannot read
        code, message = EXIT_UNAVAILABLE, exc.message
    typer.echo(f"connection-flask-ctl: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
