"""Effective configuration, read once from the environment the deployer sets per environment."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

SECRET_FIELDS = {"database_url", "jwt_key"}


class ConfigError(Exception):
    """A required setting is missing or malformed; the process refuses to start."""


@dataclass(frozen=True)
class Settings:
    environment: str
    database_url: str
    jwt_key: str = field(repr=False)
    log_level: str = "INFO"
    max_body_bytes: int = 16 * 1024
    db_pool_min: int = 1
    db_pool_max: int = 5
    revision: str = "unknown"
    public_hostname: str = ""
    workers: int = 1
    port: int = 8080
    drain_seconds: float = 0.0

    @property
    def issuer(self) -> str:
        return f"consciousness-engine/{self.environment}"

    def redacted(self) -> dict[str, Any]:
        """What /info shows: every setting, secrets replaced by a marker."""
        values = asdict(self)
        for name in SECRET_FIELDS:
            values[name] = "<redacted>" if values[name] else ""
        values["issuer"] = self.issuer
        return values


def _int(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bounded(environ: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(environ, name, default)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def from_environment(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    missing = [n for n in ("ENGINE_ENV", "ENGINE_DATABASE_URL", "ENGINE_JWT_KEY") if not env.get(n)]
    if missing:
        raise ConfigError(f"missing required settings: {', '.join(missing)}")
    if len(env["ENGINE_JWT_KEY"]) < 32:
        raise ConfigError("ENGINE_JWT_KEY must be at least 32 characters")
    return Settings(
        environment=env["ENGINE_ENV"],
        database_url=env["ENGINE_DATABASE_URL"],
        jwt_key=env["ENGINE_JWT_KEY"],
        log_level=env.get("ENGINE_LOG_LEVEL", "INFO").upper(),
        max_body_bytes=_int(env, "ENGINE_MAX_BODY_BYTES", 16 * 1024),
        db_pool_min=_int(env, "ENGINE_DB_POOL_MIN", 1),
        db_pool_max=_int(env, "ENGINE_DB_POOL_MAX", 5),
        revision=env.get("ENGINE_REVISION", "unknown"),
        public_hostname=env.get("ENGINE_PUBLIC_HOSTNAME", ""),
        workers=_bounded(env, "ENGINE_WORKERS", 1, 1, 32),
        port=_bounded(env, "ENGINE_PORT", 8080, 1, 65535),
        drain_seconds=_bounded(env, "ENGINE_DRAIN_SECONDS", 0, 0, 60),
    )


def load_or_exit(service: str) -> Settings:
    """Settings for ``service``, or exit with one clear line (no traceback) if they are wrong."""
    try:
        return from_environment()
    except ConfigError as failure:
        raise SystemExit(f"{service}: configuration error: {failure}") from None
