"""Postgres access: one async connection pool per process, the schema applied at start-up."""

from __future__ import annotations

from importlib import resources

from psycopg_pool import AsyncConnectionPool

from ce_engine.config import Settings


def make_pool(settings: Settings) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        open=False,
        timeout=5.0,
        kwargs={"application_name": "engine-api", "connect_timeout": 3},
    )


async def apply_schema(pool: AsyncConnectionPool) -> None:
    schema = resources.files("ce_engine").joinpath("schema.sql").read_text()
    async with pool.connection() as connection, connection.transaction():
        # Replicas start together: take turns, and never wait forever behind a lock.
        await connection.execute("SET LOCAL lock_timeout = '5s'")
        await connection.execute("SELECT pg_advisory_xact_lock(424242)")
        await connection.execute(schema)
