"""Bearer JWTs signed with the environment's key (HS256); roles reader < writer < admin."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

AUDIENCE = "engine-api"
ROLES = ("reader", "writer", "admin")
LEEWAY_S = 30


def claimed_subject(header: str | None) -> str:
    """The subject a refused token *claims* (unverified), for the audit trail only."""
    token = (header or "").partition(" ")[2]
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return str(claims.get("sub", ""))[:64]


class AuthError(Exception):
    """Missing, malformed, forged or expired credentials (401)."""


class ForbiddenError(Exception):
    """Valid credentials without the role the action needs (403)."""


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str

    def require(self, role: str) -> None:
        if ROLES.index(self.role) < ROLES.index(role):
            raise ForbiddenError(f"role {self.role!r} may not do this; {role!r} required")


def issue(key: str, issuer: str, subject: str, role: str, ttl_s: int = 3600) -> str:
    """Mint a token (used by operators' tooling and by the tests)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def authenticate(header: str | None, key: str, issuer: str) -> Principal:
    if not header:
        raise AuthError("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("expected 'Authorization: Bearer <token>'")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise AuthError(f"invalid token: {error}") from None
    role = claims.get("role")
    if claims.get("iat", 0) > time.time() + LEEWAY_S:
        raise AuthError("invalid token: issued in the future")
    if role not in ROLES:
        raise AuthError("token has no valid role")
    return Principal(subject=str(claims["sub"]), role=str(role))
