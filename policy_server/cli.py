"""The ``policy-server`` command: run the service, migrate the store, ingest state, write the OpenAPI spec."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from policy_server import __version__
from policy_server.errors import PolicyServerError
from policy_server.settings import Settings, SettingsError


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _configure_logging(level: str, fmt: str = "text") -> None:
    from policy_server.logs import configure

    configure(level, fmt)


@click.group()
@click.version_option(__version__, prog_name="policy-server")
def main() -> None:
    """policy-server: policy as code for Kargo promotions."""


@main.command()
@click.option("--host", default=None, help="Address to listen on [env POLICY_SERVER_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env POLICY_SERVER_PORT; default 8181].")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
def run(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API (the embedded SQLite store is created and upgraded by itself)."""
    import uvicorn

    settings = _settings(host=host, port=port)
    _configure_logging(settings.log_level, settings.log_format)
    for name in settings.extra:
        logging.getLogger("policy_server").warning("unknown setting %s ignored", name)
    if settings.should_auto_migrate:
        # Migrate once here, so that several workers do not race to do it.
        from policy_server.store import upgrade

        asyncio.run(_with_db(settings, upgrade))
    asyncio.run(_bootstrap(settings))
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        # Several processes: /metrics adds up every worker's counters from this directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="policy-server-metrics-")
    # Workers re-read the environment: pass the flags on through it.
    os.environ["POLICY_SERVER_HOST"] = settings.host
    os.environ["POLICY_SERVER_PORT"] = str(settings.port)
    os.environ["POLICY_SERVER_AUTO_MIGRATE"] = "false"
    os.environ["POLICY_SERVER_CONFIGURE_LOGGING"] = "1"  # worker processes set up logging themselves
    if workers > 1 and not settings.engine_workers:
        # The cores are shared by the server processes: each gets its share of Rego workers, so that
        # there is still about one Rego worker per core (more only switch between each other, and leak).
        os.environ["POLICY_SERVER_ENGINE_WORKERS"] = str(max(1, min(os.cpu_count() or 1, 4) // workers))
    tls = bool(settings.tls_cert_file)
    if tls != bool(settings.tls_key_file):
        raise click.UsageError("POLICY_SERVER_TLS_CERT_FILE and POLICY_SERVER_TLS_KEY_FILE go together")
    scheme = "https" if tls else "http"
    click.echo(f"policy-server {__version__} on {scheme}://{settings.host}:{settings.port} (docs at /docs)", err=True)
    click.echo(f"store: {_redact(settings.effective_database_url)}", err=True)
    uvicorn.run(
        "policy_server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        ssl_certfile=settings.tls_cert_file or None,
        ssl_keyfile=settings.tls_key_file or None,
    )


async def _bootstrap(settings: Settings) -> None:
    from policy_server.app import bootstrap_admin
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore, current_revision, head_revision

    async def action(database):  # type: ignore[no-untyped-def]
        if await current_revision(database) != head_revision():
            return
        await bootstrap_admin(AccessService(AccessStore(database), enabled=settings.auth == "enabled"), settings)

    await _with_db(settings, action)


async def _with_db(settings: Settings, action) -> object:  # type: ignore[no-untyped-def]
    from policy_server.store import Database

    db = Database(settings.effective_database_url)
    try:
        return await action(db)
    finally:
        await db.dispose()


@main.group()
def db() -> None:
    """Manage the store's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to POLICY_SERVER_DATABASE_URL."""
    from policy_server.store import upgrade

    settings = _settings()
    _configure_logging("WARNING")
    try:
        asyncio.run(_with_db(settings, lambda d: upgrade(d, revision)))
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"database at {revision}: {_redact(settings.effective_database_url)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    from policy_server.store import current_revision, head_revision

    settings = _settings()
    _configure_logging("WARNING")
    current = asyncio.run(_with_db(settings, current_revision))
    click.echo(f"database: {current or '(empty)'}\ncode:     {head_revision()}")


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--url", default=None, help="Post to a running server instead of writing the database directly.")
@click.option(
    "--token", envvar="POLICY_SERVER_TOKEN", default=None, help="Bearer token for --url [env POLICY_SERVER_TOKEN]."
)
@click.option(
    "--batch",
    type=int,
    default=0,
    show_default=True,
    help="Items per transaction (0: the whole input is one transaction).",
)
def ingest(source, url: str | None, token: str | None, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Record Kargo objects from SOURCE (a file, or - for stdin).

    SOURCE may hold `kubectl get ... -o json` output (an object or a List), `kubectl get -w -o json`
    output (objects or watch events, one after another), NDJSON, or YAML (`kubectl get -o yaml`, manifests,
    documents separated by `---`).
    """
    documents = _json_documents(source.read())
    if not documents:
        raise click.ClickException("the input holds no JSON documents")
    chunks = [documents] if batch <= 0 else [documents[i : i + batch] for i in range(0, len(documents), batch)]
    bodies = (b"\n".join(chunk) + b"\n" for chunk in chunks)
    totals: dict[str, int] = {}
    for counts in _post_all(url, bodies, token) if url else map(_apply_locally, bodies):
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    click.echo(json.dumps(totals))


def _apply_locally(body: bytes) -> dict[str, int]:
    from policy_server.kargo import parse_body
    from policy_server.store import StateStore, upgrade

    settings = _settings()
    _configure_logging("WARNING")
    try:
        items = parse_body(body, "application/x-ndjson")
    except PolicyServerError as exc:
        lines = "\n".join(f"  {e.to_dict()}" for e in exc.errors[:20])
        raise click.ClickException(f"{exc.detail}\n{lines}") from None

    async def action(database):  # type: ignore[no-untyped-def]
        if settings.should_auto_migrate:
            await upgrade(database)
        result = await StateStore(database).apply(items)
        return {
            "items": result.total,
            "applied": result.applied,
            "unchanged": result.unchanged,
            "stale": result.stale,
            "deleted": result.deleted,
            "skipped": result.skipped,
        }

    try:
        return asyncio.run(_with_db(settings, action))  # type: ignore[return-value]
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None


def _auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def _http_error(target: str, status: int, text: str, token: str | None, role: str) -> click.ClickException:
    """A server's refusal, said so that the user knows what to do (401/403: which token, and how to pass it)."""
    if status == 401:
        how = "the token was refused (unknown or revoked)" if token else "no token was given"
        return click.ClickException(
            f"{target} answered 401: {how}. Pass a {role} token with --token or POLICY_SERVER_TOKEN "
            f"(`policy-server tokens create --name NAME --role {role}` on the server makes one)"
        )
    if status == 403:
        return click.ClickException(f"{target} answered 403: the token may not do this (needs role {role}): {text}")
    return click.ClickException(f"{target} answered {status}: {text}")


_IN_FLIGHT = 3


def _post_all(url: str, bodies: Iterator[bytes], token: str | None) -> Iterator[dict[str, int]]:
    """Post each body to ``url``'s ``/v1/state`` over one connection pool, a few at a time.

    Batches may land in any order: the store keeps the newest resourceVersion of every object whatever the
    order (deletions included), so a recorded stream applies the same. On the first error nothing more is
    sent; batches already sent stay applied (each is one transaction; sending the stream again is harmless).
    """
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    import httpx

    target = url.rstrip("/") + "/v1/state"
    headers = {"content-type": "application/x-ndjson", **_auth(token)}
    with httpx.Client(headers=headers, timeout=120) as client, ThreadPoolExecutor(_IN_FLIGHT) as pool:

        def post(body: bytes) -> dict[str, int]:
            try:
                response = client.post(target, content=body)
            except httpx.HTTPError as exc:
                raise click.ClickException(f"cannot reach {target}: {exc}") from None
            if response.status_code != 200:
                raise _http_error(target, response.status_code, response.text, token, "controller")
            return response.json()

        pending: set[Future[dict[str, int]]] = set()
        for body in bodies:
            if len(pending) >= _IN_FLIGHT:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
            pending.add(pool.submit(post, body))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)


def _json_documents(data: bytes) -> list[bytes]:
    """Each JSON value of ``data`` as one line: one document, NDJSON, or kubectl's indented watch output."""
    import msgspec

    lines = [line for line in (raw.strip() for raw in data.splitlines()) if line]
    try:
        for line in lines:  # NDJSON (a recorded watch stream): the lines go as they are
            msgspec.json.decode(line)
        return lines
    except msgspec.DecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"the input is not UTF-8: {exc}") from None
    decoder = json.JSONDecoder()
    position, out = 0, []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return out
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            return _yaml_as_json(data, f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
        out.append(msgspec.json.encode(value))


def _yaml_as_json(data: bytes, json_problem: str) -> list[bytes]:
    """YAML documents (``kubectl get -o yaml``, manifests) as JSON lines, for input that is not JSON."""
    import msgspec

    from policy_server.kargo import YamlError, yaml_documents

    try:
        return [msgspec.json.encode(value) for _, value in yaml_documents(data, 64)]
    except YamlError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise click.ClickException(
            f"the input is neither JSON ({json_problem}) nor YAML ({exc.message}{where})"
        ) from None


@main.group()
def tokens() -> None:
    """Create, list and revoke API tokens (in the configured database)."""


@tokens.command("create")
@click.option("--name", required=True, help="Token name (a DNS label): the actor in the audit trail.")
@click.option(
    "--role", required=True, type=click.Choice(["reader", "controller", "policy-author", "admin"]), help="Role."
)
@click.option("--namespace", "namespaces", multiple=True, help="Limit to this namespace (repeat for several).")
def tokens_create(name: str, role: str, namespaces: tuple[str, ...]) -> None:
    """Create a token and print its secret (shown only now)."""
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore

    settings = _settings()
    _configure_logging("WARNING")

    async def action(database):  # type: ignore[no-untyped-def]
        return await AccessService(AccessStore(database)).create_token(name, role, list(namespaces) or None, "cli")

    try:
        token, secret = asyncio.run(_with_db(settings, action))  # type: ignore[misc]
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None
    scope = ", ".join(token.namespaces) if token.namespaces else "all namespaces"
    click.echo(f"created token {token.name} ({token.role}, {scope}); its secret, shown only now:", err=True)
    click.echo(secret)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (never their secrets)."""
    from policy_server.store import AccessStore

    settings = _settings()
    _configure_logging("WARNING")
    listed = asyncio.run(_with_db(settings, lambda database: AccessStore(database).tokens()))
    for token in listed:  # type: ignore[attr-defined]
        scope = ",".join(token.namespaces) if token.namespaces is not None else "*"
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
        click.echo(f"{token.name}\t{token.role}\t{scope}\t{state}\tcreated by {token.created_by}")


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke a token by name."""
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore

    settings = _settings()
    _configure_logging("WARNING")
    try:
        asyncio.run(_with_db(settings, lambda database: AccessService(AccessStore(database)).revoke(name, "cli")))
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"revoked {name}")


@main.command("apply-actions")
@click.argument("decision", default="-")
@click.option("--url", default=None, help="Fetch DECISION (an id) from this policy-server.")
@click.option(
    "--token", envvar="POLICY_SERVER_TOKEN", default=None, help="Bearer token for --url [env POLICY_SERVER_TOKEN]."
)
@click.option("--dry-run", is_flag=True, help="Print the kubectl commands instead of running them.")
@click.option("--kubectl", default="kubectl", show_default=True, help="The kubectl to run.")
def apply_actions(decision: str, url: str | None, token: str | None, dry_run: bool, kubectl: str) -> None:
    """Apply a decision's abort actions with `kubectl patch --type merge`.

    DECISION is a decision id (with --url), a file holding a decision (the answer of POST /v1/decisions),
    or - for stdin. Needs `patch` on promotions and the `promote` verb on stages (examples/kargo/rbac.yaml).
    """
    import shlex
    import subprocess

    document = _load_decision(decision, url, token)
    actions = [a for a in document.get("actions") or [] if a.get("type") == "abort"]
    failures = 0
    for action in actions:
        ref = action["promotion"]
        command = [
            kubectl,
            "patch",
            "promotions.kargo.akuity.io",
            ref["name"],
            "--namespace",
            ref["namespace"],
            "--type",
            "merge",
            "--patch",
            json.dumps(action["patch"], separators=(",", ":")),
        ]
        if dry_run:
            click.echo(shlex.join(command))
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            click.echo(f"aborted {ref['namespace']}/{ref['name']} ({action.get('policy')}: {action.get('reason')})")
        else:
            failures += 1
            click.echo(f"failed to abort {ref['namespace']}/{ref['name']}: {result.stderr.strip()}", err=True)
    if not actions:
        click.echo(f"decision {document.get('id', '?')} has no abort actions")
    raise SystemExit(1 if failures else 0)


def _load_decision(decision: str, url: str | None, token: str | None) -> dict:
    if url:
        import httpx

        target = f"{url.rstrip('/')}/v1/decisions/{decision}"
        try:
            response = httpx.get(target, headers=_auth(token), timeout=30)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {target}: {exc}") from None
        if response.status_code != 200:
            raise _http_error(target, response.status_code, response.text, token, "reader")
        return response.json()
    if decision != "-" and not Path(decision).is_file():
        raise click.ClickException(
            f"{decision!r} is not a file. To apply a logged decision by its id, say where it is logged: "
            f"--url http://HOST:8181 (with a token: --token or POLICY_SERVER_TOKEN); or give the decision's JSON "
            "(the answer of POST /v1/decisions) as a file, or on stdin with -"
        )
    text = sys.stdin.read() if decision == "-" else Path(decision).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"not a decision (JSON): {exc}") from None


@main.group()
def policies() -> None:
    """Check and test Rego policies locally (no server needed)."""


@policies.command("test")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--verbose", "-v", is_flag=True, help="List passing tests too.")
def policies_test(directory: Path | None, verbose: bool) -> None:
    """Run the test_* rules and examples of the policies in DIRECTORY (like `opa test`; exit 1 on failure).

    DIRECTORY is one policy folder (policy.rego, *_test.rego, examples/) or a folder of them; default: the
    built-in policies.
    """
    from policy_server.service.policies import builtin_dir

    root = directory or builtin_dir()
    folders = (
        [root]
        if (root / "policy.rego").is_file()
        else sorted(p for p in root.iterdir() if (p / "policy.rego").is_file())
    )
    if not folders:
        raise click.ClickException(f"no policy folders (with policy.rego) in {root}")
    _configure_logging("WARNING")
    failed = asyncio.run(_test_folders(folders, verbose))
    raise SystemExit(1 if failed else 0)


async def _test_folders(folders: list[Path], verbose: bool) -> int:
    from policy_server.engine import PolicyCode, Workbench, WorkerPool
    from policy_server.service.examples import load_examples, run_examples
    from policy_server.service.policies import check_draft_shape, read_policy_dir

    workbench = Workbench(WorkerPool(1, name="authoring"))
    passed = failed = 0
    try:
        for folder in folders:
            draft = read_policy_dir(folder)
            code = PolicyCode(folder.name, draft.source, draft.tests)
            problems = check_draft_shape(folder.name, draft)
            if not problems:
                problems = await workbench.check(code)
            for problem in problems:
                click.echo(f"ERROR: {_where(problem)}: {problem.code}: {problem.message}")
            if problems:
                # A policy that does not compile fails as a whole: its tests and examples cannot run.
                failed += len(problems)
                continue
            for result in await workbench.run_tests(code):
                ok = result.status == "pass"
                passed, failed = passed + ok, failed + (not ok)
                if verbose or not ok:
                    line = f":{result.line}" if result.line else ""
                    detail = f": {result.message}" if result.message else ""
                    click.echo(f"{result.status.upper()}: {result.file}{line}: {result.name}{detail}")
            for example in await run_examples(workbench, folder.name, draft, load_examples(folder)):
                passed, failed = passed + example.ok, failed + (not example.ok)
                if verbose or not example.ok:
                    status = "PASS" if example.ok else "FAIL"
                    click.echo(f"{status}: {folder.name}/examples/{example.name}: {example.message}")
    finally:
        await workbench.close()
    click.echo("--------------------------------------------------------------------------------")
    click.echo(f"PASS: {passed}/{passed + failed}" + (f"\nFAIL: {failed}/{passed + failed}" if failed else ""))
    return failed


@policies.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policies_check(files: tuple[Path, ...]) -> None:
    """The strict compile check on Rego FILES (a `*_test.rego` file is a test module); exit 1 on any problem."""
    from policy_server.engine import Workbench, WorkerPool

    # Files of one folder are compiled together (a policy and its tests); folders are checked apart.
    groups: dict[Path, dict[str, str]] = {}
    for f in files:
        groups.setdefault(f.resolve().parent, {})[str(f)] = f.read_text()

    async def check_all() -> list:
        workbench = Workbench(WorkerPool(1, name="authoring"))
        try:
            problems = []
            for sources in groups.values():
                policy_files = [name for name in sources if not name.endswith("_test.rego")]
                if len(policy_files) > 1:  # loose policies side by side: each on its own
                    for name in policy_files:
                        problems += await workbench.check_files({name: sources[name]}, [name])
                else:
                    problems += await workbench.check_files(sources, policy_files)
            return problems
        finally:
            await workbench.close()

    _configure_logging("WARNING")
    problems = asyncio.run(check_all())
    for problem in problems:
        click.echo(f"{_where(problem)}: {problem.code}: {problem.message}")
    click.echo(f"{len(files)} file(s), {len(problems)} problem(s)")
    raise SystemExit(1 if problems else 0)


def _where(problem) -> str:  # type: ignore[no-untyped-def]
    parts = [problem.file or "-"]
    if problem.line:
        parts.append(str(problem.line))
        if problem.column:
            parts.append(str(problem.column))
    return ":".join(parts)


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("openapi/openapi.json"),
    show_default=True,
    help="Where to write the spec (- for stdout).",
)
def openapi(output: Path) -> None:
    """Write the OpenAPI document the app serves."""
    from policy_server.app import create_app

    app = create_app(_settings())
    text = json.dumps(app.openapi_schema.to_schema(), indent=2, ensure_ascii=False) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    main()
