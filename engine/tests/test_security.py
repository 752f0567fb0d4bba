"""Security properties of engine-api against a real Postgres: data at rest, audit, rate limit."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import psycopg
import pytest
from ce_engine import auth, logs, metrics
from ce_engine.api import create_app
from ce_engine.config import Settings
from starlette.testclient import TestClient

from deployer.lower import audit_chain

from .conftest import DATA_KEY

KEY = "s" * 40
ISSUER = "consciousness-engine/test"


@pytest.fixture
def audit_lines() -> Iterator[io.StringIO]:
    """The engine's JSON log stream, captured as the cluster would collect it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("engine-api", "test"))
    logger = logging.getLogger("engine.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def settings(database_url: str, failure_limit: int = 50) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        jwt_key=KEY,
        data_key=DATA_KEY,
        audit_failure_limit=failure_limit,
        audit_failure_window_s=60,
    )


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings(database_url))) as test_client:
        yield test_client


def bearer(role: str, subject: str = "tester") -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.issue(KEY, ISSUER, subject, role)}"}


def test_user_content_is_ciphertext_in_the_database(client: TestClient, database_url: str) -> None:
    marker = "title-marker-7f3a"
    created = client.post("/v1/sessions", json={"title": marker}, headers=bearer("writer"))
    assert created.status_code == 201 and created.json()["title"] == marker
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT title FROM sessions").fetchone()
    assert row is not None and marker not in row[0] and row[0].startswith("enc:v1:")
    listed = client.get("/v1/sessions", headers=bearer("reader")).json()["sessions"]
    assert [s["title"] for s in listed] == [marker]


def test_refusals_and_writes_form_a_verifiable_chain(
    client: TestClient, audit_lines: io.StringIO
) -> None:
    assert client.post("/v1/sessions", json={"title": "a"}).status_code == 401
    assert (
        client.post("/v1/sessions", json={"title": "b"}, headers=bearer("reader")).status_code
        == 403
    )
    created = client.post("/v1/sessions", json={"title": "c"}, headers=bearer("writer", "alice"))
    deleted = client.delete(f"/v1/sessions/{created.json()['id']}", headers=bearer("admin", "root"))
    assert deleted.status_code == 204
    events = audit_chain.audit_events(audit_lines.getvalue().splitlines())
    assert [(e["status"], e["outcome"], e["subject"]) for e in events] == [
        (401, "denied", "anonymous"),
        (403, "denied", "tester"),
        (201, "allowed", "alice"),
        (204, "allowed", "root"),
    ]
    assert audit_chain.verify(events).intact
    # Alter the middle event: the verifier names it.
    tampered = [dict(e) for e in events]
    tampered[1]["outcome"] = "allowed"
    problems = audit_chain.verify(tampered).problems
    assert any("seq=2" in p and "altered" in p for p in problems), problems
    # Remove it instead: the next event no longer follows.
    problems = audit_chain.verify(events[:1] + events[2:]).problems
    assert any("seq=3" in p and "removed" in p for p in problems), problems


def test_repeated_failures_are_rate_limited_per_client(database_url: str) -> None:
    with TestClient(create_app(settings(database_url, failure_limit=5))) as client:
        assert client.get("/v1/sessions", headers=bearer("reader")).status_code == 200
        for _ in range(5):
            answer = client.get("/v1/sessions", headers={"Authorization": "Bearer x"})
            assert answer.status_code == 401
        refused = client.get("/v1/sessions", headers=bearer("reader"))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"


def test_token_claims_are_all_checked(client: TestClient) -> None:
    now = int(time.time())
    good = {
        "sub": "t",
        "role": "reader",
        "iss": ISSUER,
        "aud": "engine-api",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }
    variants = {
        "not yet valid": {**good, "nbf": now + 600},
        "wrong audience": {**good, "aud": "other"},
        "wrong issuer": {**good, "iss": "consciousness-engine/production"},
        "no role": {k: v for k, v in good.items() if k != "role"},
        "unknown role": {**good, "role": "root"},
        "no nbf": {k: v for k, v in good.items() if k != "nbf"},
    }
    assert (
        client.get(
            "/v1/sessions", headers={"Authorization": "Bearer " + jwt.encode(good, KEY)}
        ).status_code
        == 200
    )
    for name, claims in variants.items():
        header = {"Authorization": "Bearer " + jwt.encode(claims, KEY)}
        assert client.get("/v1/sessions", headers=header).status_code == 401, name
    assert json.loads(client.get("/v1/sessions", headers=bearer("reader")).text)["sessions"] == []


def test_certificate_expiry_is_a_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployer.lower import certificates

    ca = certificates.issue_ca("test CA")
    server = certificates.issue_leaf(ca, "engine-api", ["engine-api"], server=True)
    cert = tmp_path / "api.crt"
    cert.write_text(server.cert_pem)
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "missing-ca.crt"))
    expected = time.time() + certificates.seconds_left(server.cert_pem)
    metrics.observe_certificates(metrics.certificate_files(str(cert)))
    text = metrics.exposition()[0].decode()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith('engine_tls_certificate_expiry_timestamp_seconds{certificate="server"}')
    )
    assert abs(float(line.split()[-1]) - expected) < 5


def test_worker_probes_are_served_over_tls_only(database_url: str, tmp_path: Path) -> None:
    import http.client
    import socket
    import ssl

    from ce_engine.worker import Worker, serve_probes

    from deployer.lower import certificates

    from .conftest import free_port

    ca = certificates.issue_ca("test CA")
    leaf = certificates.issue_leaf(ca, "engine-worker", ["localhost"], server=True)
    for name, text in (("ca.crt", ca.cert_pem), ("w.crt", leaf.cert_pem), ("w.key", leaf.key_pem)):
        (tmp_path / name).write_text(text)
    worker = Worker(settings(database_url))
    port = free_port()
    server = serve_probes(worker, port, str(tmp_path / "w.crt"), str(tmp_path / "w.key"))
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        secure = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
        secure.request("GET", "/healthz")
        assert secure.getresponse().status == 200
        secure.close()
        with socket.create_connection(("localhost", port), timeout=5) as plain:
            plain.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            try:
                answer = plain.recv(100)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/"), "answered plaintext HTTP"
    finally:
        server.shutdown()
        server.server_close()
