"""Steps that read the audit trails: the API server's audit log and the engine's hash chain."""

from __future__ import annotations

import base64
import calendar
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from pytest_bdd import then, when

from deployer.lower import audit_chain
from deployer.lower.kube import node_states
from deployer.lower.waiting import wait_until
from steps.support.environments import Environment, http
from steps.support.kube import Kube
from steps.support.provider import NODE_SHELL, ClusterProvider
from steps.support.report import RecordFigure

AUDIT_LOG = "/var/log/kubernetes/audit/audit.log"
SECRET = "engine-secrets"  # pragma: allowlist secret


@dataclass(frozen=True)
class SecretReads:
    operator: str
    engine_identity: str
    started: float


@when(
    "the environment's Secret is read by the operator and refused to the engine's identity",
    target_fixture="secret_reads",
)
def _(kube: Kube, environment: Environment) -> SecretReads:
    review = client.AuthenticationV1Api(kube.api).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    operator = review.status.user_info.username
    started = time.time()
    kube.core.read_namespaced_secret(SECRET, environment.namespace)
    identity = f"system:serviceaccount:{environment.namespace}:engine-api"
    try:
        kube.as_service_account(environment.namespace, "engine-api").read_namespaced_secret(
            SECRET, environment.namespace
        )
    except ApiException as error:
        assert error.status == 403, f"the engine's identity got {error.status}, expected 403"
    else:
        raise AssertionError("the engine's identity read its environment's Secret")
    return SecretReads(operator, identity, started)


def control_plane(kube: Kube) -> str:
    return next(s.name for s in node_states(kube.api) if "control-plane" in s.roles)


@then("the API server's audit log names both identities and outcomes without the secret value")
def _(
    cluster_provider: ClusterProvider,
    kube: Kube,
    environment: Environment,
    secret_reads: SecretReads,
    record_figure: RecordFigure,
) -> None:
    cluster_provider.require(NODE_SHELL, "reading the API server's audit log on its node")
    node = control_plane(kube)
    wanted = {secret_reads.operator: 200, secret_reads.engine_identity: 403}

    def matching_events() -> list[dict[str, Any]] | None:
        code, output = cluster_provider.node_exec(
            node, ["grep", "-F", f'"name":"{SECRET}"', AUDIT_LOG]
        )
        assert code in (0, 1), f"cannot read {AUDIT_LOG} on {node}: {output[-300:]!r}"
        events = [json.loads(line) for line in output.decode().splitlines() if line.strip()]
        found = [
            e
            for e in events
            if e["objectRef"].get("namespace") == environment.namespace
            and e["verb"] == "get"
            and e["user"]["username"] in wanted
            and e["stage"] == "ResponseComplete"
            and _epoch(e["requestReceivedTimestamp"]) >= secret_reads.started - 1
        ]
        seen = {e["user"]["username"]: e["responseStatus"]["code"] for e in found}
        return found if seen == wanted else None

    events, seconds = wait_until(
        matching_events, timeout=30, interval=1, describe="both Secret reads in the audit log"
    )
    record_figure("audit_log_delay_s", round(seconds, 1))
    record_figure("audit_event_excerpt", json.dumps(_excerpt(events[0]), sort_keys=True))
    values = [
        base64.b64decode(v).decode()
        for v in kube.core.read_namespaced_secret(SECRET, environment.namespace).data.values()
    ]
    text = json.dumps(events)
    assert not [v for v in values if v in text], "a secret value is in the audit log"
    for event in events:
        assert event["level"] == "Metadata" and "responseObject" not in event, event
        assert event["sourceIPs"], f"no source address in {event}"


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC timestamp (to the second)."""
    return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))


def _excerpt(event: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "level",
        "verb",
        "user",
        "sourceIPs",
        "objectRef",
        "responseStatus",
        "requestReceivedTimestamp",
    )
    return {k: event.get(k) for k in keys}


@dataclass(frozen=True)
class EngineRefusals:
    forged_request_id: str
    reader_request_id: str
    source: str
    started: float


@when(
    "a forged token and a reader's write are refused by the engine API", target_fixture="refusals"
)
def _(kube: Kube, environment: Environment) -> EngineRefusals:
    forged_id, reader_id = (
        f"audit-forged-{uuid.uuid4().hex[:8]}",
        f"audit-reader-{uuid.uuid4().hex[:8]}",
    )
    started = time.time()
    url = f"{environment.api_url}/v1/sessions"
    # Control: an accepted write is audited too (as allowed), so the trail is not refusals only.
    accepted = http(
        kube,
        *environment.client,
        "POST",
        url,
        environment.token("writer"),
        {"title": "audit-control"},
    )
    assert accepted.status == 201, f"the control write was refused: {accepted}"
    forged = environment.token("admin", subject="mallory", key=uuid.uuid4().hex * 2)
    for token, request_id, status in (
        (forged, forged_id, 401),
        (environment.token("reader"), reader_id, 403),
    ):
        answer = http(
            kube,
            *environment.client,
            "POST",
            url,
            token,
            {"title": "audit"},
            curl_args=("-H", f"X-Request-ID: {request_id}"),
        )
        assert answer.status == status, f"expected {status}, got {answer}"
    pod = kube.core.read_namespaced_pod(environment.client_pod, environment.client_namespace)
    return EngineRefusals(forged_id, reader_id, pod.status.pod_ip, started)


def engine_audit_events(kube: Kube, environment: Environment) -> list[dict[str, Any]]:
    pods = kube.core.list_namespaced_pod(
        environment.namespace, label_selector="app.kubernetes.io/name=engine-api"
    ).items
    lines = [
        line
        for pod in pods
        for line in kube.logs(environment.namespace, pod.metadata.name).splitlines()
    ]
    return audit_chain.audit_events(lines)


@then("the engine's audit trail records both refusals with who, what, when and from where")
def _(
    kube: Kube, environment: Environment, refusals: EngineRefusals, record_figure: RecordFigure
) -> None:
    def both() -> dict[str, dict[str, Any]] | None:
        by_id = {e["request_id"]: e for e in engine_audit_events(kube, environment)}
        wanted = (refusals.forged_request_id, refusals.reader_request_id)
        return {i: by_id[i] for i in wanted} if all(i in by_id for i in wanted) else None

    events, seconds = wait_until(both, timeout=30, interval=1, describe="the engine's audit events")
    record_figure("engine_audit_delay_s", round(seconds, 1))
    forged, reader = events[refusals.forged_request_id], events[refusals.reader_request_id]
    record_figure("engine_audit_excerpt", json.dumps(forged, sort_keys=True))
    assert (forged["outcome"], forged["status"], forged["subject"]) == ("denied", 401, "anonymous")
    assert "mallory" in forged["detail"], f"the claimed identity is not recorded: {forged}"
    assert (reader["outcome"], reader["status"], reader["role"]) == ("denied", 403, "reader")
    for event in (forged, reader):
        assert event["action"] == "POST /v1/sessions", event
        assert event["source"] == refusals.source, f"source {event['source']} is not the client"
        assert _epoch(event["ts"]) >= refusals.started - 2, (
            f"timestamp {event['ts']} predates the request"
        )


@then("the audit chain verifies, and altering or removing an event in it is detected")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    events = engine_audit_events(kube, environment)
    report = audit_chain.verify(events)
    record_figure("engine_audit_events_verified", sum(report.chains.values()))
    record_figure("engine_audit_chains", len(report.chains))
    assert report.intact, f"the live audit chain does not verify: {report.problems[:5]}"
    longest = max(report.chains, key=lambda chain: report.chains[chain])
    chain = [e for e in events if e["chain"] == longest]
    assert len(chain) >= 3, f"too few events to tamper with in the middle: {len(chain)}"
    middle = len(chain) // 2
    altered = [dict(e) for e in chain]
    altered[middle]["outcome"] = "allowed" if altered[middle]["outcome"] == "denied" else "denied"
    problems = audit_chain.verify(altered).problems
    assert any(f"seq={chain[middle]['seq']}" in p and "altered" in p for p in problems), problems
    problems = audit_chain.verify(chain[:middle] + chain[middle + 1 :]).problems
    assert any("removed" in p for p in problems), problems
