"""The monitoring plane's own code: the object-state exporter, the metrics catalogue,
certificate names for scraping, and the capacity report's parsing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from deployer.actions import capacity, deploy, monitoring, top
from deployer.actions.engine_images import EngineImages
from deployer.errors import ClusterError
from deployer.lower import certificates
from deployer.lower import kube as lower_kube
from deployer.lower.prometheus import Sample
from deployer.settings import REPO_ROOT
from steps.common.observability_steps import (
    Episode,
    already_firing,
    applicable_faults,
    duration_seconds,
    what_the_environment_saw,
)
from steps.support.environments import Environment
from steps.support.faults import Fault
from steps.support.monitoring import ENGINE_WORKLOADS, catalogue
from steps.support.provider import NODE_POWER, ClusterProvider

MONITORING = REPO_ROOT / "infra" / "monitoring"


def exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kube_state", MONITORING / "exporters" / "kube_state.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples(families: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_pod_state_uses_kube_state_metrics_names() -> None:
    pod = {
        "metadata": {"namespace": "ce-dev", "name": "engine-worker-1"},
        "spec": {"nodeName": "ce-worker"},
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "engine-worker",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ],
        },
    }
    got = samples(exporter().pod_metrics([pod]))
    restarts = got["kube_pod_container_status_restarts_total"]
    assert restarts == [
        ({"namespace": "ce-dev", "pod": "engine-worker-1", "container": "engine-worker"}, 3.0)
    ]
    waiting = got["kube_pod_container_status_waiting_reason"][0]
    assert waiting[0]["reason"] == "CrashLoopBackOff" and waiting[1] == 1.0
    ready = {labels["condition"]: value for labels, value in got["kube_pod_status_ready"]}
    assert ready == {"true": 0.0, "false": 1.0}
    phases = {labels["phase"]: value for labels, value in got["kube_pod_status_phase"]}
    assert phases["Running"] == 1.0 and sum(phases.values()) == 1.0


def test_deployment_and_node_state() -> None:
    module = exporter()
    deployment = {
        "metadata": {"namespace": "ce-dev", "name": "engine-api"},
        "spec": {"replicas": 2},
        "status": {"availableReplicas": 1, "unavailableReplicas": 1},
    }
    got = samples(module.workload_metrics([deployment], [], []))
    assert got["kube_deployment_status_replicas_available"][0][1] == 1.0
    assert got["kube_deployment_spec_replicas"][0][1] == 2.0
    node = {
        "metadata": {"name": "ce-worker"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
    }
    conditions = {
        labels["status"]: value
        for labels, value in samples(module.node_metrics([node]))["kube_node_status_condition"]
    }
    assert conditions == {"true": 0.0, "false": 0.0, "unknown": 1.0}


def test_catalogue_covers_every_layer_with_a_scrape_job() -> None:
    layers = catalogue(REPO_ROOT)
    names = {layer.name for layer in layers}
    assert {"node", "container", "kubernetes-objects", "control-plane", "api-red"} <= names
    assert {"worker", "database", "certificates", "monitoring"} <= names
    config = yaml.safe_load((MONITORING / "config" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for layer in layers:
        if layer.per in ENGINE_WORKLOADS:
            assert {"engine-dev", "engine-staging", "engine-production"} <= jobs
        assert layer.interval_s in (5, 10), layer


def test_every_alert_links_a_runbook_section() -> None:
    runbooks = (REPO_ROOT / "docs" / "runbooks.md").read_text().lower()
    for rules in (MONITORING / "rules").glob("*.rules.yml"):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
                    assert f"\n## {anchor}\n" in runbooks, rule["alert"]
                    assert rule["labels"]["severity"] in ("warning", "critical")


def test_server_certificates_carry_the_name_prometheus_verifies() -> None:
    ca = certificates.issue_ca("test CA")
    name = deploy.metrics_server_name("dev")
    leaf = certificates.issue_leaf(ca, "engine-api", ["engine-api", name], server=True)
    assert name == "engine-metrics.ce-dev.svc"
    assert name in certificates.dns_names(leaf.cert_pem)
    assert certificates.dns_names(certificates.issue_leaf(ca, "c", [], server=False).cert_pem) == []


def test_durations_and_labels_parse() -> None:
    assert duration_seconds("400d") == 400 * 86400
    assert duration_seconds("1y2w") == (365 + 14) * 86400
    assert capacity.label_text({"__name__": "x", "namespace": "ce-dev", "container": "a"}) == (
        "container=a,namespace=ce-dev"
    )
    assert capacity.label_text({}) == "all"


def test_top_queries_are_scoped_to_the_environment() -> None:
    for row in top.rows("ce-staging"):
        assert 'namespace="ce-staging"' in row.query, row


def test_capacity_series_are_all_recorded_by_the_rules() -> None:
    rules = yaml.safe_load((MONITORING / "rules" / "capacity.rules.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"]}
    assert set(capacity.SERIES) == recorded


def test_monitoring_manifests_render(tmp_path: Path) -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (MONITORING / resource).exists(), resource
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            assert (MONITORING / file).exists(), file


def test_only_the_api_servers_own_addresses_are_admitted_from_outside_the_plane() -> None:
    policy = monitoring.api_server_policy(["172.18.0.3", "fd00::3"])
    assert policy["metadata"] == {
        "name": "allow-api-server",
        "namespace": "ce-monitoring",
        "labels": {"app.kubernetes.io/part-of": "ce-monitoring"},
    }
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "172.18.0.3/32"}}, {"ipBlock": {"cidr": "fd00::3/128"}}]}
    ]


def test_the_plane_denies_ingress_by_default_and_admits_its_own_pods() -> None:
    documents = [
        doc for doc in yaml.safe_load_all((MONITORING / "network-policies.yaml").read_text()) if doc
    ]
    by_name = {doc["metadata"]["name"]: doc["spec"] for doc in documents}
    assert by_name["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert by_name["allow-monitoring-plane"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_ready_endpoints_count_unknown_readiness_as_ready_and_skip_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EndpointSlice semantics: a nil `ready` means ready; `ready: false` is left out."""

    def endpoint(address: str, ready: bool | None) -> SimpleNamespace:
        return SimpleNamespace(addresses=[address], conditions=SimpleNamespace(ready=ready))

    piece = SimpleNamespace(
        endpoints=[
            endpoint("10.0.0.1", True),
            endpoint("10.0.0.2", None),
            endpoint("10.0.0.3", False),
        ],
        ports=[SimpleNamespace(port=8080)],
    )

    class Discovery:
        def __init__(self, _api: object) -> None:
            pass

        def list_namespaced_endpoint_slice(self, _namespace: str, label_selector: str) -> Any:
            assert label_selector == "kubernetes.io/service-name=engine-api"
            return SimpleNamespace(items=[piece])

    monkeypatch.setattr(lower_kube.client, "DiscoveryV1Api", Discovery)
    found = lower_kube.ready_endpoints(ApiClient(), "ce-dev", "engine-api")
    assert found == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]


def test_faults_a_provider_cannot_make_are_named_and_left_out() -> None:
    table = [
        {"fault": "engine-api down", "environment": "staging"},
        {"fault": "node lost", "environment": "dev"},
    ]
    left_out: list[str] = []
    kind = ClusterProvider("kind:ce", Path("kubeconfig"), capabilities=frozenset({NODE_POWER}))
    assert applicable_faults(table, kind, left_out.append) == table and not left_out
    existing = ClusterProvider("existing:eks", Path("kubeconfig"))
    assert applicable_faults(table, existing, left_out.append) == table[:1]
    assert left_out == ["node lost in dev (needs node-power)"]
    with pytest.raises(pytest.skip.Exception, match="not applicable on existing:eks"):
        applicable_faults(table[1:], existing, left_out.append)


class FakePrometheus:
    """Answers by the first fragment found in the query; when ``down``, refuses all."""

    def __init__(self, answers: dict[str, list[Sample]], down: bool = False) -> None:
        self.answers, self.down = answers, down
        self.asked: list[str] = []

    def query(self, expr: str) -> list[Sample]:
        self.asked.append(expr)
        if self.down:
            raise ClusterError("Prometheus answered 503")
        return next((found for part, found in self.answers.items() if part in expr), [])


def staging_episode() -> Episode:
    staging = Environment(
        "staging", "ce-staging", EngineImages("api", "worker", "pg"), "ce-client", "client", "k"
    )
    fault = Fault("sessions table locked", lambda: None, lambda: None, {"namespace": "ce-staging"})
    return Episode(staging, fault, [("EngineHighLatency", "warning")], [], injected_at=100.0)


def test_a_late_alert_is_explained_by_the_readers_answers_and_prometheus() -> None:
    lines = [
        '{"admitted_after_s": 0.2}',
        '{"seq": 0, "t": 99.0, "ok": true, "ms": 12, "detail": "old"}',
        '{"seq": 1, "t": 101.0, "ok": true, "ms": 1500.0, "detail": "[]"}',
        '{"seq": 2, "t": 102.0, "ok": false, "ms": 3000.0, "detail": "TimeoutError: timed out"}',
    ]
    kube = SimpleNamespace(logs=lambda namespace, pod: "\n".join(lines))
    prometheus = FakePrometheus(
        {
            "p99_1m": [Sample({"namespace": "ce-staging"}, 0.0, 0.025)],
            "rate(": [Sample({"status": "200"}, 0.0, 5.8)],
            "ALERTS": [],
        }
    )
    said = what_the_environment_saw(kube, prometheus, {"staging": "reader-1"}, staging_episode())  # type: ignore[arg-type]
    assert "2 reads since the fault, 1 failed {'TimeoutError: timed out': 1}, 2 over 1 s" in said
    assert "'p99_1m': [('', 0.025)]" in said and "('200', 5.8)" in said
    assert all('namespace="ce-staging"' in expr for expr in prometheus.asked)


def test_an_explanation_survives_a_prometheus_that_does_not_answer() -> None:
    kube = SimpleNamespace(logs=lambda namespace, pod: "")
    said = what_the_environment_saw(
        kube,
        FakePrometheus({}, down=True),
        {"staging": "reader-1"},
        staging_episode(),  # type: ignore[arg-type]
    )
    assert "0 reads since the fault" in said and "Prometheus answered 503" in said


def test_an_expected_alert_already_firing_is_named_with_the_faults_labels() -> None:
    firing = FakePrometheus({"EngineHighLatency": [Sample({}, 0.0, 1.0)]})
    assert already_firing(firing, staging_episode()) == [
        "EngineHighLatency {'namespace': 'ce-staging'}"
    ]
    assert firing.asked == [
        'ALERTS{alertname="EngineHighLatency", alertstate="firing", namespace="ce-staging"}'
    ]
    assert already_firing(FakePrometheus({}), staging_episode()) == []
