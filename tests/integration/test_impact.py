"""Impact analysis over a generated decision log whose true flips are known: a policy that denies the Stages its
`frozen` parameter lists, and a draft with another list. The expected flips are computed here from the two
lists (set differences), never by the service."""

from __future__ import annotations

import copy
import json

from tests.conftest import app_client, load
from tests.integration.test_decisions import decide

NAMESPACES = ("kargo-demo", "team-b")
STAGES = [f"st-{i:02d}" for i in range(24)]
SOURCE = (
    "package team.frozen\n\nimport rego.v1\n\n"
    "deny contains d if some d in denials(input)\n\n"
    'denials(inp) := {{"code": "frozen", "message": "this Stage is frozen"}} if {\n'
    "\tinp.stage.name in {s | some s in inp.parameters.frozen}\n"
    "} else := set()\n"
)


def _objects(fixtures_dir, namespace: str) -> tuple[list[dict], dict[str, str]]:
    """A Stage per name (a uat copy, nothing running) with one Pending Promotion at the head of its queue."""
    listing = load(fixtures_dir / "list-kargo-demo.json")
    uat = next(i for i in listing["items"] if i["kind"] == "Stage" and i["metadata"]["name"] == "uat")
    promo = next(i for i in listing["items"] if i["kind"] == "Promotion" and i["metadata"]["name"].startswith("uat."))
    freight = [i for i in listing["items"] if i["kind"] == "Freight"]
    items, heads = [], {}
    for n, name in enumerate(STAGES):
        stage = copy.deepcopy(uat)
        stage["metadata"].update(name=name, namespace=namespace, uid=f"{namespace}-{name}")
        stage["status"] = {"health": {"status": "Healthy"}}
        promotion = copy.deepcopy(promo)
        head = f"{name}.01kztre7ng6jgszv7zxzzr3{n:03d}.0ccf689"
        promotion["metadata"].update(name=head, namespace=namespace, uid=f"{namespace}-{head}")
        promotion["spec"]["stage"] = name
        promotion["status"] = {"phase": "Pending"}
        items += [stage, promotion]
        heads[name] = head
    for f in freight:
        f = copy.deepcopy(f)
        f["metadata"]["namespace"] = namespace
        items.append(f)
    return items, heads


async def _log(client, fixtures_dir, frozen: set[str]) -> dict[tuple[str, str], tuple[bool, int]]:
    """Every Stage's head asked (some several times: folded), with the policy denying ``frozen``."""
    body = {"source": SOURCE, "parameters": {"frozen": sorted(frozen)}}
    assert (await client.put("/v1/policies/frozen", json=body)).status_code in (200, 201)
    logged = {}
    for namespace in NAMESPACES:
        items, heads = _objects(fixtures_dir, namespace)
        response = await client.post("/v1/state", json={"kind": "List", "apiVersion": "v1", "items": items})
        assert response.status_code == 200, response.text
        for n, name in enumerate(STAGES):
            repeats = 1 + n % 3
            for _ in range(repeats):
                answer = await decide(client, heads[name], namespace=namespace)
            logged[(namespace, name)] = (answer["allow"], repeats)
    return logged


def _expected(logged, before: set[str], after: set[str], namespaces=NAMESPACES) -> dict[str, tuple[int, int]]:
    """(decisions, answers) per kind of flip, from the two frozen lists alone."""
    out = {"allow_to_deny": [0, 0], "deny_to_allow": [0, 0]}
    for (namespace, stage), (allowed, repeats) in logged.items():
        if namespace not in namespaces:
            continue
        assert allowed == (stage not in before)  # the log is what the first list says
        kind = "allow_to_deny" if stage in after - before else "deny_to_allow" if stage in before - after else None
        if kind:
            out[kind][0] += 1
            out[kind][1] += repeats
    return {k: tuple(v) for k, v in out.items()}


async def test_impact_counts_exactly_the_flips_the_change_makes(client, fixtures_dir):
    before = {f"st-{i:02d}" for i in range(0, 10)}
    after = {f"st-{i:02d}" for i in range(5, 17)}
    logged = await _log(client, fixtures_dir, before)
    draft = {"source": SOURCE, "parameters": {"frozen": sorted(after)}}
    answer = await client.post("/v1/policies/frozen/impact", json={"draft": draft})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    expected = _expected(logged, before, after)
    assert (report["allow_to_deny"]["decisions"], report["allow_to_deny"]["answers"]) == expected["allow_to_deny"]
    assert (report["deny_to_allow"]["decisions"], report["deny_to_allow"]["answers"]) == expected["deny_to_allow"]
    assert report["flips"] == expected["allow_to_deny"][0] + expected["deny_to_allow"][0]
    assert report["code_changes"]["decisions"] == 0 and report["complete"] is True
    assert report["scanned"]["decisions"] == len(logged)
    assert report["scanned"]["answers"] == sum(r for _, r in logged.values())
    # Per Stage: st-12 flips allow→deny in both namespaces, st-01 deny→allow; st-20 is untouched.
    by_stage = {(s["namespace"], s["stage"]): s for s in report["stages"]}
    assert by_stage[("team-b", "st-12")]["allow_to_deny"]["decisions"] == 1
    assert by_stage[("kargo-demo", "st-01")]["deny_to_allow"]["decisions"] == 1
    assert ("kargo-demo", "st-20") not in by_stage
    # Examples link to the logged decisions they stand for.
    (example, *_) = report["examples"]["allow_to_deny"]
    assert example["before"] == {"allow": True, "codes": []} and example["after"] == {
        "allow": False,
        "codes": ["frozen"],
    }
    logged_one = (await client.get(example["link"])).json()
    assert logged_one["allow"] is True and logged_one["id"] == example["id"]

    # The same list under another code: no flips, every denial a code change.
    renamed = {"source": SOURCE.replace('"code": "frozen"', '"code": "iced"'), "parameters": {"frozen": sorted(before)}}
    report = (await client.post("/v1/policies/frozen/impact", json={"draft": renamed})).json()
    assert report["flips"] == 0 and report["code_changes"]["decisions"] == len(before) * len(NAMESPACES)

    # A namespace filter, and an existing revision (revision 1 is the log's own: nothing changes).
    narrowed = await client.post("/v1/policies/frozen/impact", json={"draft": draft, "namespace": "team-b"})
    assert narrowed.json()["flips"] == sum(v[0] for v in _expected(logged, before, after, ("team-b",)).values())
    same = (await client.post("/v1/policies/frozen/impact", json={"revision": 1})).json()
    assert same["flips"] == 0 and same["code_changes"]["decisions"] == 0


async def test_limits_streaming_and_refusals(client, fixtures_dir):
    before = {"st-00", "st-01"}
    await _log(client, fixtures_dir, before)
    draft = {"source": SOURCE, "parameters": {"frozen": ["st-02"]}}
    cut = (await client.post("/v1/policies/frozen/impact", json={"draft": draft, "max_decisions": 5})).json()
    assert cut["complete"] is False and cut["stopped"] == "max_decisions" and cut["scanned"]["decisions"] == 5
    # A limit the log fits in exactly is no cut.
    total = len(STAGES) * len(NAMESPACES)
    exact = (await client.post("/v1/policies/frozen/impact", json={"draft": draft, "max_decisions": total})).json()
    assert exact["complete"] is True and exact["scanned"]["decisions"] == total

    streamed = await client.post(
        "/v1/policies/frozen/impact", json={"draft": draft}, headers={"accept": "application/x-ndjson"}
    )
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert lines[-1]["type"] == "report" and lines[-1]["flips"] == 2 * 3  # st-00, st-01 → allow; st-02 → deny
    assert all(line["type"] == "progress" for line in lines[:-1])

    for bad in ({}, {"draft": draft, "revision": 1}, {"draft": {"source": "package x\n\ndeny contains"}},
                {"draft": draft, "since": "last tuesday"}, {"draft": draft, "max_decisions": 0}):  # fmt: skip
        refused = await client.post("/v1/policies/frozen/impact", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert (await client.post("/v1/policies/frozen/impact", json={"revision": 99})).status_code == 404


async def test_a_write_can_require_an_impact_run(client, fixtures_dir):
    await _log(client, fixtures_dir, {"st-00"})
    wide = {"source": SOURCE, "parameters": {"frozen": STAGES[:10]}, "impact": {"max_flips": 3}}
    refused = await client.put("/v1/policies/frozen", json=wide)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["impact"]["flips"] == 9 * 2 and "max_flips=3" in problem["detail"]
    assert (await client.get("/v1/policies/frozen")).json()["active"]["parameters"]["frozen"] == ["st-00"]
    narrow = {"source": SOURCE, "parameters": {"frozen": ["st-00", "st-01"]}, "impact": {"max_flips": 3}}
    assert (await client.put("/v1/policies/frozen", json=narrow)).status_code == 200


async def test_a_namespace_limited_author_replays_only_their_namespaces(client, settings, fixtures_dir):
    before = {"st-00"}
    logged = await _log(client, fixtures_dir, before)
    token = (
        await client.post("/v1/tokens", json={"name": "b-author", "role": "policy-author", "namespaces": ["team-b"]})
    ).json()["token"]
    draft = {"source": SOURCE, "parameters": {"frozen": ["st-00", "st-01"]}}
    async with app_client(settings, token=token) as author:
        report = (await author.post("/v1/policies/frozen/impact", json={"draft": draft})).json()
        assert report["scanned"]["decisions"] == sum(1 for ns, _ in logged if ns == "team-b")
        assert {s["namespace"] for s in report["stages"]} == {"team-b"}
        other = await author.post("/v1/policies/frozen/impact", json={"draft": draft, "namespace": "kargo-demo"})
        assert other.status_code == 403
