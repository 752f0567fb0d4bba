"""Steps that try the engine API and the Kubernetes API with missing and forged credentials."""

from __future__ import annotations

import secrets
import uuid

import jwt
from pytest_bdd import then

from steps.support.environments import Environment, http, session_titles, write_session
from steps.support.kube import Kube
from steps.support.report import RecordFigure


def assert_refused(
    kube: Kube, environment: Environment, attempts: dict[str, str | None], status: int
) -> None:
    """Every attempt gets ``status`` with a JSON error, and none of them stores anything."""
    titles = {name: f"refused-{name}-{uuid.uuid4().hex[:8]}" for name in attempts}
    got = {
        name: write_session(kube, environment, token, titles[name])
        for name, token in attempts.items()
    }
    wrong = {name: (r.status, r.body) for name, r in got.items() if r.status != status}
    assert not wrong, f"expected {status} for every attempt, got {wrong}"
    assert all(isinstance(r.body, dict) and "error" in r.body for r in got.values()), got
    leaked = set(titles.values()) & session_titles(kube, environment)
    assert not leaked, f"refused requests stored data: {leaked}"


@then("a request without a token is refused with 401")
def _(kube: Kube, environment: Environment) -> None:
    # Control: the same write with a writer's token is accepted, so the refusals below mean it.
    accepted = write_session(kube, environment, environment.token("writer"), "control")
    assert accepted.status == 201, f"a writer's write was not accepted: {accepted}"
    assert_refused(kube, environment, {"no_token": None, "garbage": "not-a-jwt"}, 401)


@then("a request with a forged token is refused with 401")
def _(kube: Kube, environment: Environment) -> None:
    # A well-formed admin token with its signature stripped ("alg": "none").
    claims = jwt.decode(environment.token("admin", "mallory"), options={"verify_signature": False})
    unsigned = jwt.encode(claims, "", algorithm="none")
    attempts: dict[str, str | None] = {
        "other_key": environment.token("admin", "mallory", key=secrets.token_urlsafe(48)),
        "alg_none": unsigned,
        "expired": environment.token("writer", lifetime_s=-300),
    }
    assert_refused(kube, environment, attempts, 401)


@then("a reader's write is refused with 403")
def _(kube: Kube, environment: Environment) -> None:
    assert_refused(kube, environment, {"reader": environment.token("reader")}, 403)


@then("the Kubernetes API refuses an anonymous request for the environment's secrets")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    url = (
        "https://kubernetes.default.svc/api/v1/namespaces/"
        f"{environment.namespace}/secrets/engine-secrets"
    )
    # Verify the API server's certificate with the cluster CA; send no credentials at all.
    ca = ("--cacert", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    result = http(
        kube, environment.client_namespace, environment.client_pod, "GET", url, curl_args=ca
    )
    record_figure("anonymous_kubernetes_api_status", result.status)
    assert result.status in (401, 403), f"anonymous read of a Secret answered {result}"
