"""engine-worker against a real Postgres: claims each job once and writes the result."""

from __future__ import annotations

import asyncio
import time

import psycopg
from ce_engine import db
from ce_engine.config import Settings
from ce_engine.worker import CLAIM, Worker, reflect

from .conftest import DATA_KEY


def test_reflect_is_deterministic() -> None:
    assert reflect("a", 3) == reflect("a", 3) != reflect("a", 4)


def prepared(database_url: str) -> Settings:
    """The worker's settings, on a database with the engine's schema."""
    settings = Settings(
        environment="test", database_url=database_url, jwt_key="k" * 40, data_key=DATA_KEY
    )

    async def prepare() -> None:
        pool = db.make_pool(settings)
        await pool.open()
        await db.apply_schema(pool)
        await pool.close()

    asyncio.run(prepare())
    return settings


def test_worker_processes_a_queued_job(database_url: str) -> None:
    settings = prepared(database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, input, iterations, request_id) "
            "VALUES ('reflect', 'x', 5, 'r1'), ('reflect', 'y', 5, 'r2')"
        )
        worker = Worker(settings)
        assert worker.run_once(connection)
        assert worker.run_once(connection)
        assert not worker.run_once(connection)
        rows = connection.execute("SELECT input, status, result FROM jobs ORDER BY id").fetchall()
    assert rows == [("x", "done", reflect("x", 5)), ("y", "done", reflect("y", 5))]


def test_a_job_whose_worker_dies_mid_job_is_done_once_by_another(database_url: str) -> None:
    settings = prepared(database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, input, iterations, request_id) "
            "VALUES ('reflect', 'z', 5, 'r3')"
        )
    dying = psycopg.connect(database_url, autocommit=True)
    transaction = dying.transaction()
    transaction.__enter__()
    claimed = dying.execute(CLAIM).fetchone()
    assert claimed is not None
    with psycopg.connect(database_url, autocommit=True) as other:
        # While the first worker holds the job, nobody else takes it.
        assert not Worker(settings).run_once(other)
        dying.close()  # the worker's process dies: Postgres aborts its transaction
        # ... once its backend has noticed: the lock goes a moment later on a busy machine.
        deadline = time.monotonic() + 30
        while not Worker(settings).run_once(other):
            assert time.monotonic() < deadline, "the dead worker's job was never done by another"
            time.sleep(0.1)
        assert not Worker(settings).run_once(other)
        rows = other.execute("SELECT status, result FROM jobs").fetchall()
    assert rows == [("done", reflect("z", 5))]


def test_applying_the_schema_again_waits_for_no_reader_or_writer(database_url: str) -> None:
    """A pod starting during a rollout applies the schema while the others serve: on an
    up-to-date database it must not queue behind (and so block) their transactions."""
    settings = prepared(database_url)
    with psycopg.connect(database_url) as busy:
        busy.execute("INSERT INTO sessions (title, created_by) VALUES ('t', 'w')")
        busy.execute("SELECT count(*) FROM jobs")  # an open transaction on both tables

        async def again() -> float:
            pool = db.make_pool(settings)
            await pool.open()
            started = time.monotonic()
            await db.apply_schema(pool)  # lock_timeout 5 s: a table lock would fail here
            await pool.close()
            return time.monotonic() - started

        assert asyncio.run(again()) < 2.0
        busy.rollback()
