"""engine-api: the platform's HTTP JSON API (sessions, thoughts, inference jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ce_engine import VERSION, auth, db, drain, logs, metrics
from ce_engine.audit import AuditTrail, FailureLimiter
from ce_engine.config import Settings, from_environment, load_or_exit
from ce_engine.crypto import FieldCipher
from ce_engine.validation import JOB, SESSION, THOUGHT, InvalidRequest, parse_json, validate

log = logging.getLogger("engine.api")
Handler = Callable[[Request], Awaitable[Response]]


class NotFound(Exception):
    pass


def error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "detail": detail, "request_id": logs.request_id.get()}, status_code=status
    )


def principal(request: Request, role: str) -> auth.Principal:
    settings: Settings = request.app.state.settings
    who = auth.authenticate(request.headers.get("authorization"), settings.jwt_key, settings.issuer)
    request.state.principal = who
    who.require(role)
    return who


def cipher(request: Request) -> FieldCipher:
    return request.app.state.cipher  # type: ignore[no-any-return]


def opened(request: Request, row: dict[str, Any], column: str) -> dict[str, Any]:
    """``row`` with its encrypted ``column`` decrypted for the caller."""
    return {**row, column: cipher(request).decrypt(column, row[column])}


async def body(request: Request, schema: dict[str, Any]) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise InvalidRequest(413, "body_too_large", f"body exceeds {settings.max_body_bytes} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > settings.max_body_bytes:
            raise InvalidRequest(
                413, "body_too_large", f"body exceeds {settings.max_body_bytes} bytes"
            )
    return validate(
        parse_json(raw, request.headers.get("content-type"), settings.max_body_bytes), schema
    )


def pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool  # type: ignore[no-any-return]


def path_id(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no {name} {raw!r}")
    return int(raw)


async def rows(request: Request, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Run one statement on a pooled connection; rows as JSON-ready dicts."""
    async with pool(request).connection() as connection:
        cursor = await connection.cursor(row_factory=dict_row).execute(sql, params)
        return [jsonable(row) for row in await cursor.fetchall()]


async def one(request: Request, sql: str, params: tuple[Any, ...], missing: str) -> dict[str, Any]:
    found = await rows(request, sql, params)
    if not found:
        raise NotFound(missing)
    return found[0]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if request.app.state.draining:
        return error(503, "draining", "shutting down")
    try:
        async with pool(request).connection(timeout=2) as connection:
            await connection.execute("SELECT 1")
    except Exception as failure:  # noqa: BLE001 - any database failure means not ready
        metrics.DB_UP.set(0)
        return error(503, "database_unavailable", type(failure).__name__)
    metrics.DB_UP.set(1)
    return JSONResponse({"status": "ready"})


def refresh_pool_gauges(connections: AsyncConnectionPool) -> None:
    stats = connections.get_stats()
    metrics.DB_POOL_SIZE.set(stats.get("pool_size", 0))
    metrics.DB_POOL_AVAILABLE.set(stats.get("pool_available", 0))


async def metrics_endpoint(request: Request) -> Response:
    refresh_pool_gauges(pool(request))
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)


async def info(request: Request) -> Response:
    principal(request, "reader")
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {"service": "engine-api", "version": VERSION, "config": settings.redacted()}
    )


async def create_session(request: Request) -> Response:
    who = principal(request, "writer")
    document = await body(request, SESSION)
    row = await one(
        request,
        "INSERT INTO sessions (title, created_by) VALUES (%s, %s) "
        "RETURNING id, title, created_by, created_at",
        (cipher(request).encrypt("title", document["title"]), who.subject),
        "session not created",
    )
    return JSONResponse(opened(request, row, "title"), status_code=201)


async def list_sessions(request: Request) -> Response:
    principal(request, "reader")
    found = await rows(
        request, "SELECT id, title, created_by, created_at FROM sessions ORDER BY id DESC LIMIT 100"
    )
    return JSONResponse({"sessions": [opened(request, row, "title") for row in found]})


async def get_session(request: Request) -> Response:
    principal(request, "reader")
    session_id = path_id(request, "session_id")
    row = await one(
        request,
        "SELECT id, title, created_by, created_at FROM sessions WHERE id = %s",
        (session_id,),
        f"no session {session_id}",
    )
    return JSONResponse(opened(request, row, "title"))


async def delete_session(request: Request) -> Response:
    """Administrative: remove a session and its thoughts (audited)."""
    principal(request, "admin")
    session_id = path_id(request, "session_id")
    await one(
        request,
        "DELETE FROM sessions WHERE id = %s RETURNING id",
        (session_id,),
        f"no session {session_id}",
    )
    return Response(status_code=204)


async def add_thought(request: Request) -> Response:
    principal(request, "writer")
    session_id = path_id(request, "session_id")
    document = await body(request, THOUGHT)
    row = await one(
        request,
        "INSERT INTO thoughts (session_id, content) SELECT id, %s FROM sessions WHERE id = %s "
        "RETURNING id, session_id, content, created_at",
        (cipher(request).encrypt("content", document["content"]), session_id),
        f"no session {session_id}",
    )
    return JSONResponse(opened(request, row, "content"), status_code=201)


async def list_thoughts(request: Request) -> Response:
    principal(request, "reader")
    session_id = path_id(request, "session_id")
    found = await rows(
        request,
        "SELECT id, session_id, content, created_at FROM thoughts WHERE session_id = %s "
        "ORDER BY id LIMIT 500",
        (session_id,),
    )
    return JSONResponse({"thoughts": [opened(request, row, "content") for row in found]})


async def submit_job(request: Request) -> Response:
    principal(request, "writer")
    document = await body(request, JOB)
    row = await one(
        request,
        "INSERT INTO jobs (kind, input, iterations, request_id) VALUES ('reflect', %s, %s, %s) "
        "RETURNING id, status, created_at",
        (
            cipher(request).encrypt("input", document["input"]),
            document["iterations"],
            logs.request_id.get(),
        ),
        "job not queued",
    )
    log.info("job queued", extra={"fields": {"job_id": row["id"]}})
    return JSONResponse(row, status_code=202)


async def get_job(request: Request) -> Response:
    principal(request, "reader")
    job_id = path_id(request, "job_id")
    row = await one(
        request,
        "SELECT id, status, result, created_at, finished_at FROM jobs WHERE id = %s",
        (job_id,),
        f"no job {job_id}",
    )
    return JSONResponse(row)


def jsonable(row: dict[str, Any] | None) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in (row or {}).items()}


ROUTES = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics_endpoint),
    Route("/info", info),
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions", list_sessions, methods=["GET"]),
    Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{session_id}/thoughts", add_thought, methods=["POST"]),
    Route("/v1/sessions/{session_id}/thoughts", list_thoughts, methods=["GET"]),
    Route("/v1/jobs", submit_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
]


WRITES = {"POST", "PUT", "PATCH", "DELETE"}
UNAUDITED = {"/healthz", "/readyz", "/metrics"}


def audit_outcome(request: Request, route: str, status: int) -> None:
    """Audit refusals of credentials, every decision on a write, and every admin action."""
    if route in UNAUDITED or not (status in (401, 403, 429) or request.method in WRITES):
        return
    who: auth.Principal | None = getattr(request.state, "principal", None)
    header = request.headers.get("authorization")
    request.app.state.audit.record(
        action=f"{request.method} {route}",
        outcome="allowed" if status < 400 else "denied",
        status=status,
        subject=who.subject if who else "anonymous",
        role=who.role if who else "",
        source=request.client.host if request.client else "",
        detail="" if who else f"claimed subject {auth.claimed_subject(header)!r}",
    )


async def respond(request: Request, call_next: Handler, source: str) -> Response:
    """The handler's answer, with our exceptions turned into the JSON error contract."""
    limiter: FailureLimiter = request.app.state.limiter
    if limiter.blocked(source):
        response = error(429, "too_many_failures", "too many failed authentications; retry later")
        response.headers["Retry-After"] = str(request.app.state.settings.audit_failure_window_s)
        return response
    try:
        return await call_next(request)
    except auth.AuthError as failure:
        limiter.note_failure(source)
        response = error(401, "unauthorized", str(failure))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except auth.ForbiddenError as failure:
        return error(403, "forbidden", str(failure))
    except InvalidRequest as failure:
        return error(failure.status, failure.code, failure.detail)
    except NotFound as failure:
        return error(404, "not_found", str(failure))
    except Exception:
        log.exception("unhandled error")
        return error(500, "internal_error", "unexpected error; see logs with the request ID")


async def observe(request: Request, call_next: Handler) -> Response:
    """Request ID, metrics, access log, audit and the error contract around every request."""
    incoming = request.headers.get("x-request-id", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
    token = logs.request_id.set(rid)
    route = next((r.path for r in ROUTES if r.matches(request.scope)[0].value == 2), "unmatched")
    source = request.client.host if request.client else ""
    started = time.perf_counter()
    metrics.IN_FLIGHT.inc()
    try:
        response = await respond(request, call_next, source)
        response.headers["X-Request-ID"] = rid
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(route, request.method).observe(elapsed)
        if response.status_code >= 500:
            metrics.ERRORS.labels(route, request.method).inc()
        audit_outcome(request, route, response.status_code)
        if route not in UNAUDITED:
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                },
            )
        return response
    finally:
        metrics.IN_FLIGHT.dec()
        logs.request_id.reset(token)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or from_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await app.state.pool.open(wait=False)
        for attempt in range(30):
            try:
                await db.apply_schema(app.state.pool)
                break
            except Exception as failure:  # noqa: BLE001 - the database may still be starting
                log.warning("schema not applied yet (attempt %d): %s", attempt + 1, failure)
                await asyncio.sleep(2)
        metrics.set_build_info(settings.revision, settings.environment)
        drain.install(settings.drain_seconds, lambda: setattr(app.state, "draining", True))
        gauges = asyncio.create_task(keep_pool_gauges_fresh(app.state.pool))
        certificates = asyncio.create_task(keep_certificate_gauges_fresh(settings))
        log.info("engine-api started", extra={"fields": {"config": settings.redacted()}})
        yield
        app.state.draining = True
        log.info("engine-api stopping")
        gauges.cancel()
        certificates.cancel()
        await app.state.pool.close()
        metrics.process_exited()

    async def http_error(request: Request, failure: Exception) -> Response:
        status = getattr(failure, "status_code", 500)
        return error(
            status,
            "not_found" if status == 404 else "method_not_allowed",
            str(getattr(failure, "detail", "")),
        )

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=observe)],
    )
    app.state.settings = settings
    app.state.cipher = FieldCipher(settings.data_key)
    app.state.audit = AuditTrail("engine-api", settings.environment)
    app.state.limiter = FailureLimiter(
        settings.audit_failure_limit, settings.audit_failure_window_s
    )
    app.state.pool = db.make_pool(settings)
    app.state.draining = False
    return app


async def keep_pool_gauges_fresh(connections: AsyncConnectionPool) -> None:
    """Each worker process publishes its own pool figures; /metrics sums them."""
    while True:
        refresh_pool_gauges(connections)
        await asyncio.sleep(5)


async def keep_certificate_gauges_fresh(settings: Settings) -> None:
    """Certificates are re-issued and remounted while we run: read their expiry again."""
    while True:
        metrics.observe_certificates(metrics.certificate_files(settings.tls_cert_file))
        await asyncio.sleep(60)


def app_factory() -> Starlette:
    """What every server process runs (uvicorn imports it by name in each worker)."""
    settings = load_or_exit("engine-api")
    logs.configure("engine-api", settings.environment, settings.log_level)
    return create_app(settings)


def main() -> None:
    settings = load_or_exit("engine-api")
    logs.configure("engine-api", settings.environment, settings.log_level)
    metrics_dir = None
    if settings.workers > 1:
        # Set before the workers start, so their metrics go to files /metrics can sum.
        metrics_dir = tempfile.mkdtemp(prefix="engine-metrics-")
        os.environ[metrics.MULTIPROCESS_DIR] = metrics_dir
    try:
        serve(settings)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def serve(settings: Settings) -> None:
    tls = bool(settings.tls_cert_file)
    log.info(
        "engine-api serving %s with %d worker process(es)",
        "HTTPS (TLS 1.2+)" if tls else "plain HTTP (no certificate configured)",
        settings.workers,
    )
    uvicorn.run(
        "ce_engine.api:app_factory",
        ssl_certfile=settings.tls_cert_file or None,
        ssl_keyfile=settings.tls_key_file or None,
        factory=True,
        workers=settings.workers,
        host="0.0.0.0",
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=20,
        server_header=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
