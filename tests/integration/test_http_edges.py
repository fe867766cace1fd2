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
