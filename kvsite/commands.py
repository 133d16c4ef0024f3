"""`kvs`: the click group of the command line. The client subcommands (`get`, `put`, `ls`,
`watch`, `user`, ...) are thin adapters over kvsite_client; the cluster commands (`up`, `serve`,
`passwd`, `backup`, `restore`, `export`, `import`) hand their arguments to kvsite/cli.py
unchanged, and `down`, `ps` act on a cluster that `kvs up --detach` started.

Exit codes (one place, `EXIT_CODES`): 0 done, 1 not found, 2 usage (or input the API refused as
invalid), 3 conflict or failed compare, 4 refused (401/403), 5 unreachable or unavailable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click

from kvsite_client import (
    Client,
    Conflict,
    Forbidden,
    InvalidRequest,
    KvsError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)

from .profiles import profile_load, profile_save, profiles_path

EXIT_CODES: list[tuple[type[KvsError], int]] = [
    (NotFound, 1),
    (InvalidRequest, 2),
    (TooLarge, 2),
    (Conflict, 3),
    (Unauthorized, 4),
    (Forbidden, 4),
    (Unavailable, 5),
    (RateLimited, 5),
]
EXIT_FAILED_COMPARE = 3
OUTPUTS = ("json", "table", "value")
PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def exit_code(error: KvsError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


class KvsGroup(click.Group):
    """Turns the client's exceptions into a message on stderr and the exit code of their kind."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KvsError as error:
            code = f" ({error.code})" if error.code else ""
            click.echo(f"kvs: {error.detail}{code}", err=True)
            ctx.exit(exit_code(error))


@dataclass
class Settings:
    """The global options, and the client made from them on first use."""

    endpoints: str
    token: str | None
    profile: str
    output: str | None
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            saved = profile_load(self.profile)
            token, refresh = self.token, None
            if not token and saved.get("access"):
                token, refresh = saved["access"], saved.get("refresh")

            def remember(access: str) -> None:
                profile_save(self.profile, {**profile_load(self.profile), "access": access})

            self._client = Client(self.endpoints, token, refresh_token=refresh, on_token=remember)
        return self._client

    def out(self, default: str) -> str:
        return self.output or default


pass_settings = click.make_pass_decorator(Settings)


def default_endpoints(profile: str) -> str:
    return (
        os.environ.get("KVS_ENDPOINTS")
        or profile_load(profile).get("endpoints")
        or "http://127.0.0.1:8001"
    )


@click.group(cls=KvsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoints",
    metavar="URL[,URL...]",
    help="Node URLs, tried in turn (env KVS_ENDPOINTS; default http://127.0.0.1:8001).",
)
@click.option("--token", envvar="KVS_TOKEN", help="API token or JWT (env KVS_TOKEN).")
@click.option(
    "--profile",
    envvar="KVS_PROFILE",
    default="default",
    show_default=True,
    help="Saved login to use (kvs login; env KVS_PROFILE).",
)
@click.option("-o", "--output", type=click.Choice(OUTPUTS), help="Output format.")
@click.version_option(package_name="kvsite", prog_name="kvs")
@click.pass_context
def cli(ctx: click.Context, endpoints, token, profile, output) -> None:
    """kvsite's command line: run a local cluster, and read and write any cluster."""
    ctx.obj = Settings(endpoints or default_endpoints(profile), token, profile, output)
    ctx.call_on_close(lambda: ctx.obj._client and ctx.obj._client.close())


# --- printing --------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def value_text(value: Any, *, raw: bool = False) -> str:
    """A value for people: strings as they are with `raw`, everything else as JSON."""
    if raw and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def emit_table(rows: Iterable[dict], columns: list[str], *, width: int = 60) -> None:
    """`rows` as an aligned table under upper-case column names."""
    cells = [[cell_text(row.get(col), width) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    click.echo(
        "  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()
    )
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def cell_text(value: Any, width: int) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def when(ms: int | None) -> str | None:
    if ms is None:
        return None
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def read_json_arg(text: str, what: str) -> Any:
    """A JSON value from the argument, or from stdin when it is `-`; a usage error otherwise."""
    source = sys.stdin.read() if text == "-" else text
    try:
        return json.loads(source)
    except ValueError as error:
        hint = " (a string needs JSON quotes: '\"text\"')" if what == "value" else ""
        raise click.UsageError(f"The {what} is not JSON: {error}{hint}") from None


def read_json_file(path: str, what: str) -> Any:
    if path == "-":
        return read_json_arg("-", what)
    try:
        with open(path, encoding="utf-8") as source:
            return read_json_arg(source.read(), what)
    except OSError as error:
        raise click.UsageError(f"Cannot read {path}: {error.strerror}") from None


# --- keys ------------------------------------------------------------------------------------


@cli.command()
@click.argument("key")
@click.option("--raw", is_flag=True, help="Print a string value without JSON quotes.")
@pass_settings
def get(s: Settings, key: str, raw: bool) -> None:
    """Print the value of KEY (exit 1 if absent)."""
    entry = s.client().get(key)
    output = s.out("value")
    if output == "json":
        emit_json(entry)
    elif output == "table":
        columns = ["key", "version", "revision", "expires_at", "owner", "mode", "value"]
        emit_table([{**entry, "expires_at": when(entry.get("expires_at"))}], columns)
    else:
        click.echo(value_text(entry["value"], raw=raw))


@cli.command()
@click.argument("key")
@click.argument("value", metavar="JSON|-")
@click.option("--ttl", help="Expire after this long: seconds, or 90s, 5m, 2h, 1d.")
@click.option("--cas", help="Only if the current version is this (0: only if absent).")
@pass_settings
def put(s: Settings, key: str, value: str, ttl: str | None, cas: str | None) -> None:
    """Store the JSON value (or stdin, with -) as KEY's newest version."""
    answer = s.client().put(key, read_json_arg(value, "value"), ttl=ttl, cas=cas)
    output = s.out("value")
    if output == "json":
        emit_json(answer)
    elif output == "table":
        emit_table([answer], ["key", "version", "revision"])
    else:
        click.echo(answer["version"])


@cli.command("del")
@click.argument("key")
@click.option("--recurse", is_flag=True, help="Also every key under KEY/.")
@click.option("--cas", help="Only if the current version is this.")
@pass_settings
def delete(s: Settings, key: str, recurse: bool, cas: str | None) -> None:
    """Delete KEY (exit 1 if absent)."""
    deleted = s.client().delete(key, cas=cas, recurse=recurse)
    if s.out("value") == "json":
        emit_json({"deleted": deleted})
    else:
        click.echo(deleted)


@cli.command()
@click.argument("key")
@click.argument("ttl", metavar="TTL|none")
@pass_settings
def ttl(s: Settings, key: str, ttl: str) -> None:
    """Give KEY a new expiry TTL from now (none: never), keeping its value."""
    answer = s.client().refresh(key, None if ttl.lower() in ("none", "null", "0") else ttl)
    emit_json(answer) if s.out("value") == "json" else click.echo(answer["version"])


@cli.command("ls")
@click.argument("prefix", default="")
@click.option("--keys", "keys_only", is_flag=True, help="Keys only, no values.")
@click.option("--separator", help="Only keys directly under PREFIX; deeper ones as directories.")
@pass_settings
def ls(s: Settings, prefix: str, keys_only: bool, separator: str | None) -> None:
    """List the keys under PREFIX (every page)."""
    items, prefixes = [], []
    for page in s.client().pages(prefix, keys_only=keys_only, separator=separator):
        items.extend(page["items"])
        prefixes.extend(page.get("prefixes") or [])
    output = s.out("value" if keys_only else "table")
    if output == "json":
        emit_json({"items": items, **({"prefixes": prefixes} if separator else {})})
    elif output == "value":
        for name in [*prefixes, *(item["key"] for item in items)]:
            click.echo(name)
    else:
        rows = [{"key": p} for p in prefixes] + [
            {**item, "expires_at": when(item.get("expires_at"))} for item in items
        ]
        columns = ["key", "revision", "owner", "expires_at"]
        emit_table(rows, columns if keys_only else [*columns, "value"])


@cli.command()
@click.argument("key")
@pass_settings
def history(s: Settings, key: str) -> None:
    """The versions of KEY, newest first."""
    versions = list(s.client().history(key))
    output = s.out("table")
    if output == "json":
        emit_json({"key": key, "versions": versions})
    elif output == "value":
        for version in versions:
            click.echo(value_text(version.get("value")))
    else:
        rows = [{**v, "time": when(v.get("timestamp"))} for v in versions]
        emit_table(rows, ["version", "time", "deleted", "actor", "node", "value"])


@cli.command()
@click.argument("key")
@pass_settings
def meta(s: Settings, key: str) -> None:
    """Owner, group and mode of KEY."""
    emit_json(s.client().meta(key))


@cli.command()
@click.argument("prefix", default="")
@click.option("--since", type=int, help="First replay the changes after this revision.")
@pass_settings
def watch(s: Settings, prefix: str, since: int | None) -> None:
    """Print each change under PREFIX as a JSON line, until interrupted; moves to the next
    endpoint if its node goes away."""
    try:
        for event in s.client().watch(prefix, since=since):
            click.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    except KeyboardInterrupt:
        pass


@cli.command()
@click.argument("file", metavar="FILE|-")
@pass_settings
def txn(s: Settings, file: str) -> None:
    """Run the transaction in FILE (JSON: compare, success, failure); exit 3 if a compare
    failed."""
    body = read_json_file(file, "transaction")
    if not isinstance(body, dict):
        raise click.UsageError("The transaction must be a JSON object.")
    answer = s.client().txn(body.get("compare"), body.get("success"), body.get("failure"))
    emit_json(answer)
    if not answer.get("succeeded"):
        sys.exit(EXIT_FAILED_COMPARE)


@cli.command()
@click.argument("file", metavar="FILE|-")
@pass_settings
def query(s: Settings, file: str) -> None:
    """Run the query on values in FILE (JSON: prefix, where, order_by, ...), every page."""
    body = read_json_file(file, "query")
    if not isinstance(body, dict):
        raise click.UsageError("The query must be a JSON object.")
    items = list(s.client().query(**body))
    output = s.out("table")
    if output == "json":
        emit_json({"items": items})
    elif output == "value":
        for item in items:
            click.echo(item["key"])
    else:
        emit_table(items, ["key", "revision", "value"])


# --- pub/sub ---------------------------------------------------------------------------------


@cli.command()
@click.argument("topic")
@click.argument("data", metavar="JSON|-")
@pass_settings
def pub(s: Settings, topic: str, data: str) -> None:
    """Publish a JSON message on TOPIC; print its id."""
    click.echo(s.client().publish(topic, read_json_arg(data, "message")))


@cli.command()
@click.argument("topic")
@pass_settings
def sub(s: Settings, topic: str) -> None:
    """Print each message published on TOPIC as a JSON line, until interrupted."""
    try:
        for message in s.client().subscribe(topic):
            click.echo(json.dumps(message, ensure_ascii=False, separators=(",", ":")))
    except KeyboardInterrupt:
        pass


# --- cluster ---------------------------------------------------------------------------------


@cli.command()
@pass_settings
def members(s: Settings) -> None:
    """The cluster's members as this node sees them."""
    rows = s.client().members()
    if s.out("table") == "json":
        emit_json(rows)
    else:
        rows = [{**m, "last_seen": m.get("last_seen")} for m in rows]
        emit_table(rows, ["node_id", "url", "status", "incarnation", "last_seen"])


@cli.command()
@pass_settings
def status(s: Settings) -> None:
    """The node's status: mode, keys, revision, Merkle root, members."""
    answer = s.client().status()
    if s.out("table") == "json":
        emit_json(answer)
    else:
        emit_table([{"field": k, "value": v} for k, v in answer.items()], ["field", "value"])


# --- accounts --------------------------------------------------------------------------------


def emit_rows(s: Settings, rows: list[dict], columns: list[str], name: str) -> None:
    output = s.out("table")
    if output == "json":
        emit_json(rows)
    elif output == "value":
        for row in rows:
            click.echo(row[name])
    else:
        emit_table(rows, columns)


def emit_one(s: Settings, row: dict | None) -> None:
    if row is not None:
        emit_json(row)


def password_from(stdin: bool) -> str | None:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return None


@cli.group()
def user() -> None:
    """Users: list, get, create, update, delete."""


@user.command("list")
@pass_settings
def user_list(s: Settings) -> None:
    emit_rows(s, s.client().user_list(), ["username", "groups", "is_superuser"], "username")


@user.command("get")
@click.argument("username")
@pass_settings
def user_get(s: Settings, username: str) -> None:
    emit_one(s, s.client().user_get(username))


@user.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--group", "groups", multiple=True, help="A group to be in (repeatable).")
@click.option("--email")
@pass_settings
def user_create(s, username, password_stdin, groups, email) -> None:
    fields = {"password": password_from(password_stdin), "email": email}
    fields = {k: v for k, v in fields.items() if v is not None}
    if groups:
        fields["groups"] = list(groups)
    emit_one(s, s.client().user_create(username, **fields))


@user.command("update")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read a new password from stdin.")
@click.option("--group", "groups", multiple=True, help="Replace the groups (repeatable).")
@click.option("--active/--inactive", default=None)
@pass_settings
def user_update(s, username, password_stdin, groups, active) -> None:
    fields: dict[str, Any] = {}
    if password_stdin:
        fields["password"] = password_from(True)
    if groups:
        fields["groups"] = list(groups)
    if active is not None:
        fields["is_active"] = active
    emit_one(s, s.client().user_update(username, **fields))


@user.command("delete")
@click.argument("username")
@pass_settings
def user_delete(s: Settings, username: str) -> None:
    s.client().user_delete(username)


@cli.group()
def group() -> None:
    """Groups: list, get, create, update, delete."""


@group.command("list")
@pass_settings
def group_list(s: Settings) -> None:
    emit_rows(s, s.client().group_list(), ["name", "members"], "name")


@group.command("get")
@click.argument("name")
@pass_settings
def group_get(s: Settings, name: str) -> None:
    emit_one(s, s.client().group_get(name))


@group.command("create")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="A member (repeatable).")
@pass_settings
def group_create(s: Settings, name: str, members: tuple[str, ...]) -> None:
    fields = {"members": list(members)} if members else {}
    emit_one(s, s.client().group_create(name, **fields))


@group.command("update")
@click.argument("name")
@click.option("--add", multiple=True, help="Add a member (repeatable).")
@click.option("--remove", multiple=True, help="Remove a member (repeatable).")
@pass_settings
def group_update(s: Settings, name: str, add, remove) -> None:
    fields = {k: list(v) for k, v in (("add", add), ("remove", remove)) if v}
    emit_one(s, s.client().group_update(name, **fields))


@group.command("delete")
@click.argument("name")
@pass_settings
def group_delete(s: Settings, name: str) -> None:
    s.client().group_delete(name)


@cli.group()
def token() -> None:
    """API tokens: list, create, revoke."""


@token.command("list")
@pass_settings
def token_list(s: Settings) -> None:
    rows = s.client().token_list()
    emit_rows(s, rows, ["id", "user", "name", "scopes", "prefix", "expires_at"], "id")


@token.command("create")
@click.argument("username")
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope (repeatable).")
@click.option("--prefix", help="Confine the token to keys and topics under this prefix.")
@click.option("--expires-in", type=int, help="Seconds until it expires.")
@click.option("--name")
@pass_settings
def token_create(s, username, scopes, prefix, expires_in, name) -> None:
    """Issue a token for USERNAME; prints its secret (shown only now)."""
    fields = {"prefix": prefix, "expires_in": expires_in, "name": name}
    issued = s.client().token_create(
        username, list(scopes), **{k: v for k, v in fields.items() if v is not None}
    )
    emit_json(issued) if s.out("value") == "json" else click.echo(issued["token"])


@token.command("revoke")
@click.argument("token_id")
@pass_settings
def token_revoke(s: Settings, token_id: str) -> None:
    s.client().token_revoke(token_id)


@cli.group()
def acl() -> None:
    """Prefix ACL rules: list, get, set, delete."""


@acl.command("list")
@pass_settings
def acl_list(s: Settings) -> None:
    emit_rows(s, s.client().rule_list(), ["prefix", "owner", "group", "mode"], "prefix")


@acl.command("get")
@click.argument("prefix")
@pass_settings
def acl_get(s: Settings, prefix: str) -> None:
    emit_one(s, s.client().rule_get(prefix))


@acl.command("set")
@click.argument("prefix")
@click.option("--mode", required=True, help="e.g. cdwr--wr---r, or 0..4095.")
@click.option("--owner")
@click.option("--group")
@pass_settings
def acl_set(s: Settings, prefix: str, mode: str, owner, group) -> None:
    fields: dict[str, Any] = {"mode": int(mode) if mode.isdigit() else mode}
    fields.update({k: v for k, v in (("owner", owner), ("group", group)) if v is not None})
    emit_one(s, s.client().rule_set(prefix, **fields))


@acl.command("delete")
@click.argument("prefix")
@pass_settings
def acl_delete(s: Settings, prefix: str) -> None:
    s.client().rule_delete(prefix)


@cli.group()
def schema() -> None:
    """JSON schemas of prefixes: list, get, set, delete."""


@schema.command("list")
@pass_settings
def schema_list(s: Settings) -> None:
    emit_json(s.client().schema_list())


@schema.command("get")
@click.argument("prefix")
@pass_settings
def schema_get(s: Settings, prefix: str) -> None:
    emit_one(s, s.client().schema_get(prefix))


@schema.command("set")
@click.argument("prefix")
@click.argument("file", metavar="FILE|-")
@pass_settings
def schema_set(s: Settings, prefix: str, file: str) -> None:
    emit_one(s, s.client().schema_set(prefix, read_json_file(file, "schema")))


@schema.command("delete")
@click.argument("prefix")
@pass_settings
def schema_delete(s: Settings, prefix: str) -> None:
    s.client().schema_delete(prefix)


# --- logins ----------------------------------------------------------------------------------


@cli.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@pass_settings
def login(s: Settings, username: str, password_stdin: bool) -> None:
    """Log in as USERNAME; the JWTs are saved in the profile (file 0600) and the access one is
    refreshed by itself when it runs out."""
    password = password_from(True) if password_stdin else click.prompt("Password", hide_input=True)
    client = Client(s.endpoints)
    try:
        tokens = client.login(username, password)
    finally:
        client.close()
    path = profile_save(
        s.profile,
        {"endpoints": s.endpoints, "username": username, **tokens},
    )
    click.echo(f"logged in as {username} (profile {s.profile!r} in {path})")


@cli.command()
@pass_settings
def logout(s: Settings) -> None:
    """Forget the profile's saved login."""
    profile_save(s.profile, None)
    click.echo(f"logged out (profile {s.profile!r} in {profiles_path()})")


@cli.command()
@pass_settings
def whoami(s: Settings) -> None:
    """Who the credential is: username, scopes, groups, prefix."""
    emit_json(s.client().whoami())


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(kvs completion bash)"."""
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)(cli, {}, "kvs", "_KVS_COMPLETE")
    click.echo(complete.source())


# --- the cluster commands of kvsite/cli.py ---------------------------------------------------


def _legacy(name: str, help_text: str, *, client_options: bool = False) -> None:
    @cli.command(name, context_settings=PASSTHROUGH, add_help_option=False, help=help_text)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def command(ctx: click.Context, args: tuple[str, ...]) -> None:
        from . import cli as launcher

        argv = [name, *args]
        if client_options:
            given = ctx.obj
            if "--endpoints" not in args and (ctx.parent.params.get("endpoints") or None):
                argv += ["--endpoints", given.endpoints]
            if "--token" not in args and given.token:
                argv += ["--token", given.token]
        parsed = launcher.build_parser().parse_args(argv)
        ctx.exit(parsed.handler(parsed))


for _name, _help in [
    ("up", "Start a local cluster (kvs up --help; --detach: in the background)."),
    ("down", "Stop a cluster started with kvs up --detach (kvs down --help)."),
    ("ps", "List the processes of a cluster started with kvs up --detach."),
    ("serve", "Run one node's web server in the foreground (kvs serve --help)."),
    ("passwd", "Give a user of a local cluster a new password (kvs passwd --help)."),
    ("backup", "Back up one node from its data directory (kvs backup --help)."),
    ("restore", "Restore a backup into a stopped node (kvs restore --help)."),
]:
    _legacy(_name, _help)
for _name, _help in [
    ("export", "Write the keys under a prefix as JSON lines (kvs export --help)."),
    ("import", "Write JSON lines through the API (kvs import --help)."),
]:
    _legacy(_name, _help, client_options=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kvs` console script: the exit status."""
    try:
        # Without standalone mode click answers ctx.exit(n) by returning n, and a command's
        # own return value otherwise (None here).
        code = cli.main(args=argv, prog_name="kvs", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    except BrokenPipeError:  # `kvs ls | head`: the reader has gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code if isinstance(code, int) else 0
