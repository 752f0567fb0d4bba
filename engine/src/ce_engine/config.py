"""Effective configuration, read once from the environment the deployer sets per environment."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ce_engine.crypto import FieldCipher

SECRET_FIELDS = {"database_url", "jwt_key", "data_key"}
SECRET_SETTINGS = ("ENGINE_DATABASE_URL", "ENGINE_JWT_KEY", "ENGINE_DATA_KEY")


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
    data_key: str = field(default="", repr=False)
    audit_failure_limit: int = 100
    audit_failure_window_s: int = 60
    tls_cert_file: str = ""
    tls_key_file: str = ""

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


def _read_secret_files(env: dict[str, str]) -> None:
    """``NAME_FILE`` points at a mounted Secret file: secrets never sit in the pod spec's env."""
    for name in SECRET_SETTINGS:
        path = env.get(f"{name}_FILE")
        if path and not env.get(name):
            try:
                with open(path, encoding="utf-8") as handle:
                    env[name] = handle.read().strip()
            except OSError as error:
                raise ConfigError(f"{name}_FILE: cannot read {path}: {error.strerror}") from None


def from_environment(
    environ: dict[str, str] | None = None, verifies_tokens: bool = True
) -> Settings:
    """Settings from env vars; the worker verifies no tokens, so it is not given the JWT key."""
    env = dict(os.environ if environ is None else environ)
    _read_secret_files(env)
    required = ["ENGINE_ENV", "ENGINE_DATABASE_URL", "ENGINE_DATA_KEY"]
    if verifies_tokens:
        required.append("ENGINE_JWT_KEY")
    missing = [n for n in required if not env.get(n)]
    if missing:
        raise ConfigError(f"missing required settings: {', '.join(missing)}")
    if verifies_tokens and len(env["ENGINE_JWT_KEY"]) < 32:
        raise ConfigError("ENGINE_JWT_KEY must be at least 32 characters")
    if bool(env.get("ENGINE_TLS_CERT_FILE")) != bool(env.get("ENGINE_TLS_KEY_FILE")):
        raise ConfigError("set both ENGINE_TLS_CERT_FILE and ENGINE_TLS_KEY_FILE, or neither")
    try:
        FieldCipher(env["ENGINE_DATA_KEY"])
    except ValueError as error:
        raise ConfigError(f"ENGINE_DATA_KEY: {error}") from None
    return Settings(
        environment=env["ENGINE_ENV"],
        database_url=env["ENGINE_DATABASE_URL"],
        jwt_key=env.get("ENGINE_JWT_KEY", ""),
        log_level=env.get("ENGINE_LOG_LEVEL", "INFO").upper(),
        max_body_bytes=_int(env, "ENGINE_MAX_BODY_BYTES", 16 * 1024),
        db_pool_min=_int(env, "ENGINE_DB_POOL_MIN", 1),
        db_pool_max=_int(env, "ENGINE_DB_POOL_MAX", 5),
        revision=env.get("ENGINE_REVISION", "unknown"),
        public_hostname=env.get("ENGINE_PUBLIC_HOSTNAME", ""),
        workers=_bounded(env, "ENGINE_WORKERS", 1, 1, 32),
        port=_bounded(env, "ENGINE_PORT", 8080, 1, 65535),
        drain_seconds=_bounded(env, "ENGINE_DRAIN_SECONDS", 0, 0, 60),
        data_key=env["ENGINE_DATA_KEY"],
        audit_failure_limit=_bounded(env, "ENGINE_AUTH_FAILURE_LIMIT", 100, 1, 100000),
        audit_failure_window_s=_bounded(env, "ENGINE_AUTH_FAILURE_WINDOW_SECONDS", 60, 1, 3600),
        tls_cert_file=env.get("ENGINE_TLS_CERT_FILE", ""),
        tls_key_file=env.get("ENGINE_TLS_KEY_FILE", ""),
    )


def load_or_exit(service: str) -> Settings:
    """Settings for ``service``, or exit with one clear line (no traceback) if they are wrong."""
    try:
        return from_environment(verifies_tokens=service == "engine-api")
    except ConfigError as failure:
        raise SystemExit(f"{service}: configuration error: {failure}") from None
