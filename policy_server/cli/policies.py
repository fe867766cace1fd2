"""``policy-server policies``: check and test Rego policies locally, with no server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from policy_server.cli._base import CommandError, main, where


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
