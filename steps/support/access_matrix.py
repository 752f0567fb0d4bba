"""The engine API's access matrix: every route and method x every kind of credential.

Each cell's expected status follows from two facts only: whether the
credential is valid for this environment, and whether its role reaches the
route's required role (reader < writer < admin).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from steps.support.environments import Environment

ROLES = ("reader", "writer", "admin")


@dataclass(frozen=True)
class Credential:
    name: str
    token: str | None
    role: str | None  # None: not a valid credential for this environment


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str  # with {session} / {victim} / {job} placeholders
    role: str
    success: int
    body: dict[str, Any] | None = None


ROUTES = (
    RouteCase("GET", "/info", "reader", 200),
    RouteCase("GET", "/v1/sessions", "reader", 200),
    RouteCase("POST", "/v1/sessions", "writer", 201, {"title": "{marker}"}),
    RouteCase("GET", "/v1/sessions/{session}", "reader", 200),
    RouteCase("DELETE", "/v1/sessions/{victim}", "admin", 204),
    RouteCase("GET", "/v1/sessions/{session}/thoughts", "reader", 200),
    RouteCase("POST", "/v1/sessions/{session}/thoughts", "writer", 201, {"content": "{marker}"}),
    RouteCase("POST", "/v1/jobs", "writer", 202, {"input": "{marker}", "iterations": 1}),
    RouteCase("GET", "/v1/jobs/{job}", "reader", 200),
)


def credentials(environment: Environment) -> list[Credential]:
    """Valid roles, and every way a token can be wrong."""
    now = int(time.time())
    valid = {
        "sub": "matrix",
        "role": "admin",
        "iss": f"consciousness-engine/{environment.name}",
        "aud": "engine-api",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 600,
    }

    def signed(claims: dict[str, Any], key: str | None = None) -> str:
        return jwt.encode(claims, key or environment.jwt_key, algorithm="HS256")

    unsigned = jwt.encode(valid, "", algorithm="none")
    return [
        Credential("no token", None, None),
        Credential("garbage", "not-a-jwt", None),
        Credential("other key", signed(valid, secrets.token_urlsafe(48)), None),
        Credential("alg none", unsigned, None),
        Credential(
            "expired", signed({**valid, "iat": now - 900, "nbf": now - 900, "exp": now - 300}), None
        ),
        Credential("not yet valid", signed({**valid, "nbf": now + 600}), None),
        Credential("wrong audience", signed({**valid, "aud": "another-service"}), None),
        Credential(
            "wrong issuer", signed({**valid, "iss": "consciousness-engine/production"}), None
        ),
        Credential("no role", signed({k: v for k, v in valid.items() if k != "role"}), None),
        *(Credential(role, signed({**valid, "role": role}), role) for role in ROLES),
    ]


def expected(credential: Credential, route: RouteCase) -> int:
    if credential.role is None:
        return 401
    return route.success if ROLES.index(credential.role) >= ROLES.index(route.role) else 403


@dataclass(frozen=True)
class Cell:
    id: str
    credential: str
    route: str
    expected: int
    marker: str
    request: dict[str, Any]


def cells(environment: Environment, ids: dict[str, int]) -> list[Cell]:
    """One request per (credential, route); refusals first, accepted controls last."""
    built = []
    for credential in credentials(environment):
        for route in ROUTES:
            marker = f"matrix-{uuid.uuid4().hex[:12]}"
            path = route.path.format(**{k: str(v) for k, v in ids.items()})
            body = (
                {
                    k: (v.format(marker=marker) if isinstance(v, str) else v)
                    for k, v in route.body.items()
                }
                if route.body
                else None
            )
            cell_id = f"{credential.name} | {route.method} {route.path}"
            request = {
                "id": cell_id,
                "method": route.method,
                "path": path,
                "token": credential.token,
                "body": body,
            }
            built.append(
                Cell(
                    cell_id,
                    credential.name,
                    f"{route.method} {route.path}",
                    expected(credential, route),
                    marker,
                    request,
                )
            )
    return sorted(built, key=lambda cell: cell.expected < 400)
