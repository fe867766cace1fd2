"""``policy-server policies``: check and test Rego policies locally, with no server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from policy_server.cli._base import CommandError, main, where
from policy_server.cli._client import TOKEN_HELP


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
        raise CommandError(f"no policy folders (with policy.rego) in {root}")

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
                click.echo(f"ERROR: {where(problem)}: {problem.code}: {problem.message}")
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

    problems = asyncio.run(check_all())
    for problem in problems:
        click.echo(f"{where(problem)}: {problem.code}: {problem.message}")
    click.echo(f"{len(files)} file(s), {len(problems)} problem(s)")
    raise SystemExit(1 if problems else 0)


@policies.command("impact")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--policy", "policy_id", help="The policy the draft replaces (default: the folder's or file's name).")
@click.option("--since", default="7d", show_default=True, help="Window start: 7d, 12h, 30m, or an RFC 3339 time.")
@click.option("--until", default=None, help="Window end (default: now).")
@click.option("--namespace", default=None, help="Only this Kargo project.")
@click.option("--stage", default=None, help="Only this Stage.")
@click.option("--max-decisions", default=5000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=click.FloatRange(1, 300))
@click.option("--url", default=None, help="A running policy-server (else the configured database, read directly).")
@click.option("--token", envvar="POLICY_SERVER_TOKEN", default=None, help=TOKEN_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def policies_impact(
    path: Path,
    policy_id: str | None,
    since: str,
    until: str | None,
    namespace: str | None,
    stage: str | None,
    max_decisions: int,
    timeout_s: float,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """What the policy at PATH (a policy.rego, or a folder with policy.json) would have decided differently on
    the logged decisions of a window, compared with what was decided: flips allow→deny and deny→allow, code
    changes, per Stage, with example decisions. Exit 0; the report says what changed."""
    import json

    from policy_server.service.policies import read_policy_dir

    if path.is_dir():
        draft = read_policy_dir(path)
        name = path.name
    else:
        from policy_server.store import RevisionDraft

        draft = RevisionDraft(source=path.read_text())
        name = path.parent.name if path.name == "policy.rego" else path.stem
    policy_id = policy_id or name
    body = {
        "draft": {"source": draft.source, "mode": draft.mode, "scope": draft.scope, "parameters": draft.parameters},
        "since": since, "until": until, "namespace": namespace, "stage": stage,
        "max_decisions": max_decisions, "timeout_s": timeout_s,
    }  # fmt: skip
    if url:
        from policy_server.cli._client import Client

        with Client(url, token, "policy-author", timeout=timeout_s + 30) as client:
            report = client.post_json(f"/v1/policies/{policy_id}/impact", body)
    else:
        report = _local_impact(policy_id, draft, body)
    click.echo(json.dumps(report, indent=2) if as_json else render_impact(report))


def _local_impact(policy_id: str, draft, body: dict) -> dict:
    """The same replay on the configured database, with an authoring worker of this process."""
    import msgspec

    from policy_server.api.params import window_time
    from policy_server.api.policies.impact import impact_view, run_impact
    from policy_server.cli._base import with_database
    from policy_server.engine import PolicyCode, Workbench, WorkerPool
    from policy_server.service.impact import ImpactAnalysis, ImpactQuestion
    from policy_server.service.policies import check_draft_shape
    from policy_server.store import DecisionFilter, DecisionStore

    async def run(database) -> dict:
        from datetime import UTC, datetime

        workbench = Workbench(WorkerPool(1, name="authoring"))
        try:
            problems = check_draft_shape(policy_id, draft) or await workbench.check(PolicyCode(policy_id, draft.source))
            if problems:
                raise CommandError("; ".join(f"{where(p)}: {p.code}: {p.message}" for p in problems))
            now = datetime.now(UTC)
            where_ = DecisionFilter(
                namespace=body["namespace"], stage=body["stage"],
                since=window_time(body["since"], "since", now), until=window_time(body["until"], "until", now),
            )  # fmt: skip
            question = ImpactQuestion(policy_id, draft, where_, body["max_decisions"], body["timeout_s"])
            report = await run_impact(ImpactAnalysis(DecisionStore(database), workbench), question)
            return msgspec.to_builtins(impact_view(report))
        finally:
            await workbench.close()

    return with_database(run)


def render_impact(report: dict) -> str:
    """A table a person reads: totals, then per Stage, then examples."""

    def count(c: dict) -> str:
        return f"{c['decisions']}" + (f" ({c['answers']} answers)" if c["answers"] != c["decisions"] else "")

    lines = [
        f"Impact of {report['policy']} ({report['mode']}) on decisions since {report['since'] or 'the start'}"
        + ("" if report["complete"] else f" — STOPPED EARLY ({report['stopped']})"),
        f"  replayed      {count(report['scanned'])}"
        + (f", {report['without_input']} without input (pruned)" if report["without_input"] else ""),
        f"  allow → deny  {count(report['allow_to_deny'])}",
        f"  deny → allow  {count(report['deny_to_allow'])}",
        f"  code changes  {count(report['code_changes'])}",
    ]
    if report["draft_failures"]:
        lines.append(f"  draft failed  {report['draft_failures']} (counted as denials)")
    if report["stages"]:
        lines += ["", f"  {'namespace/stage':<40} {'allow→deny':>10} {'deny→allow':>10} {'codes':>6}"]
        for s in report["stages"]:
            where_ = f"{s['namespace']}/{s['stage'] or '-'}"
            lines.append(
                f"  {where_:<40} {s['allow_to_deny']['decisions']:>10} {s['deny_to_allow']['decisions']:>10} "
                f"{s['code_changes']['decisions']:>6}"
            )
    for kind, examples in report["examples"].items():
        for e in examples:
            lines.append(
                f"  e.g. {kind:<13} {e['id']}  {e['namespace']}/{e['promotion'] or e['stage']}: "
                f"{','.join(e['before']['codes']) or 'allow'} → {','.join(e['after']['codes']) or 'allow'}"
            )
    return "\n".join(lines)
