"""engine-api against a real Postgres: the contract, auth, and bad input that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from ce_engine import auth
from ce_engine.api import create_app
from ce_engine.config import Settings
from starlette.testclient import TestClient

from .conftest import DATA_KEY

KEY = "k" * 40


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        jwt_key=KEY,
        max_body_bytes=2048,
        data_key=DATA_KEY,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def token(role: str, key: str = KEY, issuer: str = "consciousness-engine/test") -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.issue(key, issuer, 'tester', role)}"}


def count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_writer_creates_and_reader_reads_a_session(client: TestClient) -> None:
    created = client.post("/v1/sessions", json={"title": "first"}, headers=token("writer"))
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    thought = client.post(
        f"/v1/sessions/{session_id}/thoughts", json={"content": "hello"}, headers=token("writer")
    )
    assert thought.status_code == 201
    listed = client.get(f"/v1/sessions/{session_id}/thoughts", headers=token("reader"))
    assert [t["content"] for t in listed.json()["thoughts"]] == ["hello"]
    assert created.headers["X-Request-ID"]


def test_request_id_is_propagated(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        (token("writer", key="f" * 40), 401),  # forged: signed with another key
        (token("writer", issuer="consciousness-engine/production"), 401),  # another environment
        (token("reader"), 403),  # a reader trying to write
    ],
)
def test_bad_credentials_store_nothing(
    client: TestClient, database_url: str, headers: dict[str, str], status: int
) -> None:
    response = client.post("/v1/sessions", json={"title": "x"}, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] in {"unauthorized", "forbidden"}
    assert count(database_url, "sessions") == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"title": 42}', "application/json", 422),
        (b'{"title": "x", "extra": 1}', "application/json", 422),
        (b"{}", "application/json", 422),
        (b'{"title": ""}', "application/json", 422),
        (b'["title"]', "application/json", 422),
        (b'{"title": "x"}', "text/plain", 415),
        (b'{"title": "' + b"x" * 4000 + b'"}', "application/json", 413),
    ],
)
def test_bad_input_gets_a_json_4xx_and_stores_nothing(
    client: TestClient, database_url: str, body: bytes, content_type: str, status: int
) -> None:
    response = client.post(
        "/v1/sessions", content=body, headers={**token("writer"), "Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert count(database_url, "sessions") == 0


def test_jobs_are_queued_with_the_request_id(client: TestClient, database_url: str) -> None:
    response = client.post(
        "/v1/jobs",
        json={"input": "x", "iterations": 10},
        headers={**token("writer"), "X-Request-ID": "job-req-1"},
    )
    assert response.status_code == 202
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT status, request_id FROM jobs").fetchone()
    assert row == ("queued", "job-req-1")


def test_info_redacts_secrets(client: TestClient) -> None:
    config = client.get("/info", headers=token("reader")).json()["config"]
    assert config["environment"] == "test"
    assert config["jwt_key"] == "<redacted>" and config["database_url"] == "<redacted>"


def test_metrics_count_requests(client: TestClient) -> None:
    client.get("/v1/sessions", headers=token("reader"))
    text = client.get("/metrics").text
    assert 'engine_http_requests_total{method="GET",route="/v1/sessions",status="200"}' in text
    assert "engine_build_info" in text


def test_unknown_routes_are_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
