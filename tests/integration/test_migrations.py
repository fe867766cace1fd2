"""Migrations: an empty database upgraded to head matches the models exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from policy_server.store import Database, current_revision, head_revision, metadata, upgrade


async def test_upgrade_of_an_empty_database_matches_the_models(database_url):
    db = Database(database_url)
    try:
        assert await current_revision(db) is None
        await upgrade(db)
        assert await current_revision(db) == head_revision()
        await upgrade(db)  # idempotent

        def diff(sync_conn):
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)

        async with db.writer.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_ready_reports_an_unmigrated_database(settings):
    from dataclasses import replace

    from tests.conftest import app_client

    async with app_client(replace(settings, auto_migrate=False)) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        assert "policy-server db upgrade" in response.json()["checks"][0]["detail"]
        assert (await client.get("/health")).status_code == 200


async def test_ready_once_migrated(client):
    response = await client.get("/ready")
    assert response.status_code == 200 and response.json()["ready"] is True


async def test_decisions_logged_before_inputs_moved_keep_their_inputs(database_url):
    from sqlalchemy import text

    from policy_server.store import DecisionFilter, DecisionStore

    db = Database(database_url)
    try:
        await upgrade(db, "0006")
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO decisions (id, namespace, stage, promotion, prospective, freight, allow, claimed,"
                    " evaluated_at, last_at, repeat_count, fold_key, input_hash, duration_ms, caller, result, input)"
                    " VALUES ('01KZ0000000000000000000001', 'kargo-demo', 'prod', 'p1', :f, NULL, :f, :f,"
                    " :at, :at, 1, 'k', 'h', 1.5, 'test', :result, :input)"
                ),
                {
                    "f": False,
                    "at": datetime(2026, 11, 1, tzinfo=UTC),
                    "result": '{"allow": false, "reasons": []}',
                    "input": '{"version": 1, "namespace": "kargo-demo", "note": "naïve ✓"}',
                },
            )
        await upgrade(db)
        store = DecisionStore(db)
        logged = await store.get("01KZ0000000000000000000001")
        assert logged is not None
        assert logged.input == {"version": 1, "namespace": "kargo-demo", "note": "naïve ✓"}
        (listed,) = await store.list(DecisionFilter(namespace="kargo-demo"))
        assert listed.input is None and listed.result["allow"] is False
    finally:
        await db.dispose()
