"""Kubernetes API helpers shared by the steps: typed clients, exec, logs, waits."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

from deployer.lower import rollouts
from deployer.lower.kube import api_client, pod_exec
from deployer.lower.waiting import wait_until

KUBE_PROXY_HEALTH_PORT = 10256


def is_ready(pod: Any) -> bool:
    """A pod that is not being deleted and whose Ready condition is True."""
    conditions = {c.type: c.status for c in (pod.status.conditions or [])}
    return pod.metadata.deletion_timestamp is None and conditions.get("Ready") == "True"


@dataclass(frozen=True)
class Kube:
    """The API groups the suite talks to, bound to one cluster."""

    api: ApiClient

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, context: str | None = None) -> Kube:
        return cls(api_client(kubeconfig, context))

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def autoscaling(self) -> client.AutoscalingV2Api:
        return client.AutoscalingV2Api(self.api)

    @property
    def networking(self) -> client.NetworkingV1Api:
        return client.NetworkingV1Api(self.api)

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    @property
    def authorization(self) -> client.AuthorizationV1Api:
        return client.AuthorizationV1Api(self.api)

    def as_service_account(self, namespace: str, name: str) -> client.CoreV1Api:
        """The core API as a workload's own identity (a short-lived token from TokenRequest)."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        )
        token = self.core.create_namespaced_service_account_token(name, namespace, request)
        configuration = client.Configuration()
        configuration.host = self.api.configuration.host
        configuration.ssl_ca_cert = self.api.configuration.ssl_ca_cert
        configuration.api_key = {"authorization": f"Bearer {token.status.token}"}
        return client.CoreV1Api(client.ApiClient(configuration))

    def can(
        self,
        user: str,
        groups: list[str],
        verb: str,
        namespace: str,
        name: str = "",
        resource: str = "secrets",
        group: str = "",
    ) -> bool:
        """What the API server's authorizer answers for ``user`` (a live decision)."""
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=verb,
                    resource=resource,
                    group=group,
                    name=name or None,
                ),
            )
        )
        return bool(self.authorization.create_subject_access_review(review).status.allowed)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def exec(
        self,
        namespace: str,
        pod: str,
        command: list[str],
        container: str | None = None,
        timeout: float = 30,
    ) -> tuple[int, str]:
        """Run ``command`` in a container; return (exit code, combined output)."""
        code, out, err = pod_exec(self.api, namespace, pod, command, container, timeout)
        return code, out + err

    def worker_nodes(self) -> list[str]:
        """The nodes workloads run on (not the tainted control plane)."""
        return sorted(
            node.metadata.name
            for node in self.core.list_node().items
            if "node-role.kubernetes.io/control-plane" not in (node.metadata.labels or {})
        )

    def node_ready(self, name: str) -> bool:
        return any(
            c.type == "Ready" and c.status == "True"
            for c in self.core.read_node(name).status.conditions or []
        )

    def services_routed_since(self, node: str, since: float) -> bool:
        """Whether kube-proxy on ``node`` has written its Service rules, for every address
        family, since ``since`` (its health endpoint, read through the API server).

        A restarted node has none at first: a request from one of its pods to a Service's
        address is refused there (the node image's entrypoint); before the node did that,
        it left by the default route and the machine's egress proxy answered engine-api's
        address with its own certificate."""
        try:
            answer = self.core.connect_get_node_proxy_with_path(
                f"{node}:{KUBE_PROXY_HEALTH_PORT}", "healthz", _preload_content=False
            )
        except ApiException:
            return False  # 503 until it has synced, or not listening yet
        health = json.loads(answer.data)
        families = (health.get("status") or {"any": health}).values()
        return all(
            family.get("healthy") and _rfc3339_seconds(family.get("lastUpdated", "")) >= since
            for family in families
        )

    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Create a namespace and wait for its ``default`` ServiceAccount: a pod created
        before the controller adds it is refused (403 "serviceaccount default not found"),
        which failed a busy run's first pod in a fresh namespace."""
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )

        def has_default_account() -> bool:
            try:
                self.core.read_namespaced_service_account("default", name)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            return True

        wait_until(
            has_default_account,
            timeout=60,
            interval=0.5,
            describe=f"the default ServiceAccount of namespace {name}",
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod now; one already gone is no error (a finalizer may come second)."""
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise

    def pod_ready(self, namespace: str, name: str) -> bool:
        try:
            pod = self.core.read_namespaced_pod(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return is_ready(pod)

    def wait_pods_ready(self, namespace: str, names: list[str], timeout: float = 180) -> float:
        __tracebackhide__ = True

        def all_ready() -> bool:
            return all(self.pod_ready(namespace, name) for name in names)

        _, seconds = wait_until(
            all_ready, timeout=timeout, interval=1, describe=f"pods {names} Ready in {namespace}"
        )
        return seconds

    def wanted_replicas(self, namespace: str, app: str) -> int:
        """How many pods ``app`` should run: its Argo Rollout's count when it has one
        (engine-api: the Deployment only holds the template), else its Deployment's."""
        rollout = rollouts.read(self.api, namespace, app)
        if rollout is not None:
            return int(rollout["spec"].get("replicas", 1))
        return int(self.apps.read_namespaced_deployment(app, namespace).spec.replicas or 0)

    def restart_deployment(self, namespace: str, name: str, timeout: float) -> float:
        """Roll every pod of a Deployment (as `kubectl rollout restart`); seconds until done.
        For a Deployment that is a Rollout's template, the Rollout rolls the pods."""
        __tracebackhide__ = True
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        generation = self.apps.patch_namespaced_deployment(
            name, namespace, patch
        ).metadata.generation

        def rolled_out() -> bool:
            rollout = rollouts.state(self.api, namespace, name)
            if rollout is not None:
                assert not rollout.rolled_back, f"the restart was rolled back: {rollout.message}"
                return rollout.healthy
            deployment = self.apps.read_namespaced_deployment(name, namespace)
            status, want = deployment.status, deployment.spec.replicas
            return bool(
                (status.observed_generation or 0) >= generation
                and status.updated_replicas == want
                and status.available_replicas == want
                and (status.replicas or 0) == want
            )

        _, seconds = wait_until(
            rolled_out, timeout=timeout, interval=1, describe=f"{namespace}/{name} restarted"
        )
        return seconds

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        # Raw bytes: the client would otherwise parse a log that happens to be one
        # JSON document and hand back its Python repr.
        response = self.core.read_namespaced_pod_log(
            pod, namespace, container=container, _preload_content=False
        )
        text: str = response.data.decode(errors="replace")
        return text

    def wait_log_line(self, namespace: str, pod: str, prefix: str, timeout: float) -> str:
        """The first line of the pod's log that starts with ``prefix``, once there is one."""

        def found() -> str | None:
            lines = self.logs(namespace, pod).splitlines()
            return next((line for line in lines if line.startswith(prefix)), None)

        line, _ = wait_until(
            found, timeout=timeout, interval=1, describe=f"{pod} to log {prefix!r}"
        )
        return str(line)

    def summary_of(self, namespace: str, pod: str, timeout: float) -> dict[str, Any]:
        """Wait for a run-once pod to end; return the JSON summary on its last log line."""

        def finished() -> dict[str, Any] | None:
            status = self.core.read_namespaced_pod(pod, namespace).status
            if status.phase not in ("Succeeded", "Failed"):
                return None
            output = self.logs(namespace, pod).strip()
            last = output.splitlines()[-1] if output else ""
            if status.phase == "Failed" or not last.startswith("{"):
                return {"failed": output[-500:] or status.phase}
            summary: dict[str, Any] = json.loads(last)
            return summary

        summary, _ = wait_until(
            finished, timeout=timeout, interval=0.5, describe=f"{pod} to finish"
        )
        assert "failed" not in summary, f"{namespace}/{pod} failed: {summary['failed']}"
        return summary

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create one object from a manifest dict (Pod, Service, ConfigMap, Deployment, ...)."""
        kind = manifest["kind"]
        creators = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "ConfigMap": self.core.create_namespaced_config_map,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "Deployment": self.apps.create_namespaced_deployment,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
        }
        creators[kind](namespace, manifest)


def _rfc3339_seconds(stamp: str) -> float:
    """Epoch seconds of a Go RFC 3339 time (nanoseconds cut to microseconds); 0 if absent."""
    if not stamp:
        return 0.0
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")
