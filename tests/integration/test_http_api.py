"""The HTTP API over a real socket: auth, lookups, error bodies, health and metrics."""

from datetime import date

from callcenter.domain.certificates import Certificate, Contact, HolderType


async def seed(container, clock):
    await container.registry.import_certificates(
        [
            Certificate(
                "123456",
                HolderType.ORGANISATION,
                "",
                "ООО «Ромашка»",
                "Продукт",
                "5.0.13000",
                date(2026, 1, 1),
                date(2026, 12, 31),
                contacts=[Contact("Смирнова Анна Сергеевна", "+79002223344")],
            )
        ],
        clock.now(),
    )


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def test_lookup_valid_with_holder_data(client, container, clock, pbx_token):
    await seed(container, clock)
    r = await client.get("/api/v1/certificates/123456", headers=bearer(pbx_token))
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "VALID"
    assert body["organisation"] == "ООО «Ромашка»"
    assert body["contacts"][0]["full_name"] == "Смирнова Анна Сергеевна"
    assert (body["version"], body["build"]) == (5, "0.13000")
    assert body["valid_to"] == "2026-12-31"
    assert "ООО «Ромашка»" in await r.text()  # UTF-8 on the wire, not \\u escapes


async def test_lookup_statuses_and_service(client, container, clock, pbx_token):
    await seed(container, clock)
    h = bearer(pbx_token)
    assert (await (await client.get("/api/v1/certificates/999999", headers=h)).json())[
        "status"
    ] == "UNKNOWN"
    r = await client.get("/api/v1/certificates/123456?service=recovery", headers=h)
    assert (await r.json())["status"] == "VALID"
    r = await client.get("/api/v1/certificates/123456?service=teleport", headers=h)
    assert r.status == 422
    assert (await r.json())["error"] == "unknown_service"


async def test_bad_numbers_are_422_never_500(client, pbx_token):
    for number in ("12ab", "1", "9" * 40, "%D0%A4%D0%A4%D0%A4%D0%A4%D0%A4%D0%A4"):
        r = await client.get(f"/api/v1/certificates/{number}", headers=bearer(pbx_token))
        assert r.status == 422, number
        body = await r.json()
        assert body["error"] == "invalid_certificate_number"
        assert body["message"]


async def test_auth_required_and_checked(client, container, clock, pbx_token):
    r = await client.get("/api/v1/certificates/123456")
    assert (r.status, (await r.json())["error"]) == (401, "missing_token")
    r = await client.get("/api/v1/certificates/123456", headers=bearer("cc_nonsense"))
    assert (r.status, (await r.json())["error"]) == (401, "bad_token")
    r = await client.get("/api/v1/certificates/123456", headers={"Authorization": "Basic abc"})
    assert r.status == 401
    r = await client.get("/api/v1/policy", headers=bearer(pbx_token))
    assert (r.status, (await r.json())["error"]) == (403, "forbidden")


async def test_lookup_by_caller_phone(client, container, clock, pbx_token):
    await seed(container, clock)
    r = await client.get("/api/v1/certificates?phone=89002223344", headers=bearer(pbx_token))
    assert [c["number"] for c in (await r.json())["certificates"]] == ["123456"]
    r = await client.get("/api/v1/certificates", headers=bearer(pbx_token))
    assert r.status == 422


async def test_policy_for_supervisor(client, supervisor_token):
    r = await client.get("/api/v1/policy", headers=bearer(supervisor_token))
    body = await r.json()
    assert body["in_force"]["oral_window_seconds"] == 600
    assert body["in_force"]["written_answer_hours"] == 12


async def test_unknown_route_and_method_are_json(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404
    assert (await r.json())["error"] == "not_found"
    r = await client.delete("/healthz")
    assert r.status == 405
    assert "error" in await r.json()


async def test_health_and_metrics(client, container, clock, pbx_token):
    await seed(container, clock)
    r = await client.get("/healthz")
    assert (r.status, (await r.json())["database"]) == (200, "ok")
    await client.get("/api/v1/certificates/123456", headers=bearer(pbx_token))
    text = await (await client.get("/metrics")).text()
    assert 'callcenter_certificate_lookups_total{status="VALID"} 1' in text
    assert 'route="/api/v1/certificates/{number}",status="200"' in text
    assert "callcenter_http_request_duration_seconds_bucket" in text


async def test_health_reports_a_dead_database(client, container):
    await container.engine.dispose()
    container.engine.url  # noqa: B018 - the engine object stays, its database goes
    from callcenter.adapters import db

    container.engine = db.create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    r = await client.get("/healthz")
    assert r.status == 503
    assert (await r.json())["status"] == "degraded"


async def test_an_unreachable_database_is_a_503_not_a_500(clock, unused_tcp_port):
    """Nothing listens where the database should be: a clear 503 for the caller to retry."""
    from aiohttp.test_utils import TestClient, TestServer

    from callcenter import bootstrap
    from callcenter.config import Settings
    from callcenter.web.app import init_app

    url = f"postgresql+asyncpg://nobody@127.0.0.1:{unused_tcp_port}/none"
    c = bootstrap.build(Settings().replace(database={"url": url}), clock=clock)
    try:
        async with TestClient(TestServer(init_app(c))) as cli:
            body = {"event": "call_started", "call_id": "1795480500.1"}
            r = await cli.post("/api/v1/events", json=body, headers=bearer("some-token"))
            assert r.status == 503
            assert (await r.json())["error"] == "database_unavailable"
            r = await cli.get("/api/v1/certificates/123456", headers=bearer("some-token"))
            assert r.status == 503
    finally:
        await c.close()


async def test_every_answer_carries_the_protective_headers(client, container, clock, pbx_token):
    await seed(container, clock)
    ok = await client.get("/api/v1/certificates/123456", headers=bearer(pbx_token))
    refused = await client.get("/api/v1/certificates/123456")
    missing = await client.get("/api/v1/nothing-here")
    as_json = {**bearer(pbx_token), "Content-Type": "application/json"}
    bad_json = await client.post("/api/v1/events", data=b"{", headers=as_json)
    assert [r.status for r in (ok, refused, missing, bad_json)] == [200, 401, 404, 400]
    for r in (ok, refused, missing, bad_json):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Referrer-Policy"] == "same-origin"
    health = await client.get("/healthz")
    assert "Cache-Control" not in health.headers  # no personal data there


async def test_nul_and_lone_surrogates_in_queries_and_paths_are_named(
    client, container, clock, supervisor_token
):
    for url, field in (
        ("/api/v1/calls?status=%00", "status"),
        ("/api/v1/calls?agent=a%00b", "agent"),
        ("/api/v1/calls/x%00y", "call_id"),
        ("/api/v1/tickets?from=0001-01-01", "from"),
        ("/api/v1/tickets?to=9999-12-31", "to"),
        ("/api/v1/calls?offset=" + "9" * 24, "offset"),
        ("/api/v1/tickets/%C2%B2", "ticket_id"),
    ):
        r = await client.get(url, headers=bearer(supervisor_token))
        body = await r.json()
        assert r.status == 422, (url, body)
        assert field in body["fields"], (url, body)
