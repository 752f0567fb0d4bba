"""Steps that try the engine API and the Kubernetes API with every kind of credential."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException
from pytest_bdd import then

from steps.support import access_matrix
from steps.support.access_matrix import Cell
from steps.support.environments import (
    Environment,
    api_addresses,
    api_call,
    http,
    session_titles,
    write_session,
)
from steps.support.kube import Kube
from steps.support.report import RecordFigure
from steps.support.workloads import script_pod

RATE_LIMIT_ATTEMPTS = 400  # > the engine's failure limit (100 per minute per client) x processes


def run_plan(kube: Kube, environment: Environment, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a list of requests from the environment's client pod; their results in order."""
    __tracebackhide__ = True
    code, output = kube.exec(
        environment.client_namespace,
        environment.client_pod,
        ["python3", "/probe/auth_matrix.py", json.dumps(plan)],
        timeout=180,
    )
    assert code == 0, f"the request runner failed: {output[-500:]}"
    results: list[dict[str, Any]] = json.loads(output.strip().splitlines()[-1])["results"]
    return results


@dataclass(frozen=True)
class MatrixRun:
    cells: list[Cell]
    statuses: dict[str, int]
    session_id: int


def created_id(result: Any, what: str) -> int:
    __tracebackhide__ = True
    assert result.status in (201, 202), f"the control {what} was not accepted: {result}"
    return int(result.body["id"])


@then(
    "every route answers each kind of credential with exactly the expected status",
    target_fixture="matrix_run",
)
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> MatrixRun:
    writer = environment.token("writer")
    session = created_id(write_session(kube, environment, writer, "matrix-session"), "session")
    victim = created_id(write_session(kube, environment, writer, "matrix-victim"), "session")
    job = api_call(
        kube,
        environment,
        "POST",
        "/v1/jobs",
        writer,
        {"input": "matrix", "iterations": 1},
    )
    ids = {"session": session, "victim": victim, "job": created_id(job, "job")}
    cells = access_matrix.cells(environment, ids)
    results = run_plan(
        kube, environment, {"base": environment.api_url, "requests": [c.request for c in cells]}
    )
    statuses = {r["id"]: r["status"] for r in results}
    wrong = [
        f"{c.id}: expected {c.expected}, got {statuses.get(c.id)}"
        for c in cells
        if statuses.get(c.id) != c.expected
    ]
    not_json = [r["id"] for r in results if r["status"] in (401, 403) and not r["json_error"]]
    refused = Counter(c.expected for c in cells if c.expected >= 400)
    record_figure("access_matrix_cells", len(cells))
    record_figure("access_matrix_refused_401", refused[401])
    record_figure("access_matrix_refused_403", refused[403])
    record_figure("access_matrix_accepted", len(cells) - sum(refused.values()))
    assert not wrong, f"{len(wrong)} of {len(cells)} cells answered wrongly:\n" + "\n".join(wrong)
    assert not not_json, f"refusals without a JSON error body: {not_json}"
    return MatrixRun(cells, statuses, session)


@then("no refused request stored anything")
def _(kube: Kube, environment: Environment, matrix_run: MatrixRun) -> None:
    thoughts = api_call(
        kube,
        environment,
        "GET",
        f"/v1/sessions/{matrix_run.session_id}/thoughts",
        environment.token("reader"),
    )
    assert thoughts.status == 200, thoughts
    stored = session_titles(kube, environment) | {t["content"] for t in thoughts.body["thoughts"]}
    writes = [
        c
        for c in matrix_run.cells
        if c.route in ("POST /v1/sessions", "POST /v1/sessions/{session}/thoughts")
    ]
    leaked = [c.id for c in writes if c.expected >= 400 and c.marker in stored]
    # Control: the accepted writes of the same run are there, so the listing sees writes.
    missing = [c.id for c in writes if c.expected < 400 and c.marker not in stored]
    assert not missing, f"accepted writes not found: {missing}"
    assert not leaked, f"refused requests stored data: {leaked}"
    # The refused deletes left the victim in place: only then could the admin's delete be a 204.
    deletes = [c for c in matrix_run.cells if c.route == "DELETE /v1/sessions/{victim}"]
    assert [matrix_run.statuses[c.id] for c in deletes if c.expected == 204] == [204]


@then("repeated failures from one client are rate limited while another client is served")
def _(
    kube: Kube, environment: Environment, toolbox_image: str, record_figure: RecordFigure
) -> None:
    bad = {"method": "GET", "path": "/v1/sessions", "token": "not-a-jwt", "body": None}
    plan = {
        "base": environment.api_url,
        "admit": f"{environment.api_url}/healthz",
        "admit_addresses": api_addresses(kube, environment),  # a new pod: every node admits it
        "stop_at": 429,
        "requests": [
            *({**bad, "id": f"bad-{n}"} for n in range(RATE_LIMIT_ATTEMPTS)),
            {**bad, "id": "valid-after", "token": environment.token("reader")},
        ],
    }
    name = f"brute-force-{uuid.uuid4().hex[:6]}"
    pod = script_pod(
        name, "auth_matrix.py", {"PLAN": json.dumps(plan)}, toolbox_image, deadline_s=240
    )
    kube.create(environment.client_namespace, pod)
    results = kube.summary_of(environment.client_namespace, name, timeout=240)["results"]
    statuses = Counter(r["status"] for r in results)
    record_figure("rate_limit_failures_before_429", statuses[401])
    assert results[-1]["status"] == 429, (
        f"no 429 after {len(results)} failed attempts: {dict(statuses)}"
    )
    assert set(statuses) == {401, 429}, f"unexpected answers while brute forcing: {dict(statuses)}"
    # Control: a different client (another pod, another address) is served at the same moment.
    served = api_call(
        kube,
        environment,
        "GET",
        "/v1/sessions",
        environment.token("reader"),
    )
    assert served.status == 200, f"another client was refused too: {served}"


@then("the Kubernetes API refuses an anonymous request for the environment's secrets")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    url = (
        "https://kubernetes.default.svc/api/v1/namespaces/"
        f"{environment.namespace}/secrets/engine-secrets"
    )
    # Verify the API server's certificate with the cluster CA; send no credentials at all.
    ca = ("--cacert", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    # Control: the same anonymous client is answered on the public health endpoint.
    health = http(
        kube,
        *environment.client,
        "GET",
        "https://kubernetes.default.svc/readyz",
        curl_args=ca,
    )
    assert health.status == 200, f"the API server did not answer the anonymous client: {health}"
    result = http(kube, *environment.client, "GET", url, curl_args=ca)
    record_figure("anonymous_kubernetes_api_status", result.status)
    assert result.status in (401, 403), f"anonymous read of a Secret answered {result}"


def pod_manifest(name: str, **changes: Any) -> dict[str, Any]:
    """A pod that meets the `restricted` Pod Security profile, then ``changes`` applied."""
    container: dict[str, Any] = {
        "name": "app",
        "image": "ce.local/toolbox:bookworm",
        "command": ["sleep", "1"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    container["securityContext"].update(changes.get("container", {}))
    spec: dict[str, Any] = {"containers": [container], **changes.get("pod", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def admission_answer(kube: Kube, namespace: str, manifest: dict[str, Any]) -> str:
    """'' when the API admits the pod (server-side dry run: nothing is created), else its reason."""
    try:
        kube.core.create_namespaced_pod(namespace, manifest, dry_run="All")
    except ApiException as error:
        return f"{error.status}: {json.loads(error.body).get('message', error.body)}"
    return ""


@then("a compliant pod is admitted in the environment's namespace")
def _(kube: Kube, environment: Environment) -> None:
    answer = admission_answer(kube, environment.namespace, pod_manifest("compliant"))
    assert answer == "", f"a pod meeting the restricted profile was refused: {answer}"


@then("a privileged pod, a hostPath pod and a root pod are each rejected with the API's reason")
def _(kube: Kube, environment: Environment, namespace: str, record_figure: RecordFigure) -> None:
    attempts = {
        "privileged": (
            pod_manifest(
                "privileged", container={"privileged": True, "allowPrivilegeEscalation": True}
            ),
            "privileged",
        ),
        "hostPath": (
            pod_manifest(
                "host-path",
                pod={"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
            ),
            "hostPath",
        ),
        "root": (
            pod_manifest("root", container={"runAsNonRoot": False, "runAsUser": 0}),
            "runAsUser=0",
        ),
    }
    for what, (manifest, reason) in attempts.items():
        # Control: the same pod is admitted where Pod Security does not apply (a test namespace).
        assert admission_answer(kube, namespace, manifest) == "", f"{what} pod refused outside"
        answer = admission_answer(kube, environment.namespace, manifest)
        record_figure(f"psa_{what}_refusal", answer[:200])
        assert answer.startswith("403") and "PodSecurity" in answer and reason in answer, (
            f"{what} pod in {environment.namespace}: expected a PodSecurity refusal naming "
            f"{reason!r}, got {answer or 'admitted'}"
        )
