"""What a browser, a probe or a scraper sends besides the API: HEAD, the favicon, the metrics media type."""

from __future__ import annotations


async def test_head_answers_the_headers_of_get_without_a_body(client):
    for path in ("/docs/", "/health", "/docs/openapi.json"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    # A /v1 route still needs its token for HEAD.
    del client.headers["authorization"]
    assert (await client.head("/v1/policies")).status_code == 401


async def test_the_favicon_is_an_icon_not_a_problem(client):
    response = await client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


async def test_metrics_name_their_charset_once(client):
    content_type = (await client.get("/metrics")).headers["content-type"]
    assert content_type.count("charset") == 1 and content_type.startswith("text/plain; version=")


async def test_a_documented_query_name_that_differs_from_the_argument_is_accepted(client, fixtures_dir):
    """`DELETE /v1/state/...?resourceVersion=N` (the wire name) is the documented form: not an unknown parameter."""
    await client.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
    name = "prod.01kztrf9sk2ppygyjnh3f2mnnz.10a9340"
    response = await client.delete(f"/v1/state/promotions/kargo-demo/{name}", params={"resourceVersion": "999999"})
    assert response.status_code == 204, response.text
    assert (await client.get(f"/v1/state/promotions/kargo-demo/{name}")).status_code == 404
    typo = await client.delete(f"/v1/state/promotions/kargo-demo/{name}", params={"resource_versio": "1"})
    assert typo.status_code == 422 and "resource_versio" in typo.json()["detail"]
