"""Migrations: an empty database upgraded to head matches the models exactly."""

from __future__ import annotations

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
