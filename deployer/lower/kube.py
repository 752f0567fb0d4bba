"""The Kubernetes API via the official client: readiness checks for a fresh cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.stream import stream

from deployer.errors import ConfigError


def api_client(
    kubeconfig: Path, context: str | None = None, retries: int | None = None
) -> ApiClient:
    """An ApiClient bound to one kubeconfig (no process-wide default configuration);
    ``retries`` 0 for a probe whose failure is an answer (no urllib3 retry warnings)."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kubeconfig), context=context, client_configuration=configuration
    )
    if retries is not None:
        configuration.retries = retries
    return ApiClient(configuration)


def pinned_context(kubeconfig: Path, context: str | None, folder: Path) -> Path:
    """``kubeconfig`` with ``context`` as its current context, as a file of our own in
    ``folder`` (kubectl and the client then agree on the cluster without a flag each)."""
    if context is None:
        return kubeconfig
    document = yaml.safe_load(kubeconfig.read_text()) or {}
    names = [entry.get("name") for entry in document.get("contexts") or []]
    if context not in names:
        raise ConfigError(f"{kubeconfig} has no context {context!r} (it has: {names})")
    document["current-context"] = context
    folder.mkdir(parents=True, exist_ok=True)
    pinned = folder / f"kubeconfig-{context.replace('/', '_')}"
    pinned.touch()
    pinned.chmod(0o600)  # before the credentials are written, whatever it was
    pinned.write_text(yaml.safe_dump(document))
    return pinned


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool
    roles: tuple[str, ...]
    internal_ip: str
    kubelet_version: str


def node_states(api: ApiClient) -> list[NodeState]:
    states = []
    for node in client.CoreV1Api(api).list_node().items:
        conditions = {c.type: c.status for c in (node.status.conditions or [])}
        roles = tuple(
            sorted(
                label.split("/", 1)[1]
                for label in (node.metadata.labels or {})
                if label.startswith("node-role.kubernetes.io/")
            )
        ) or ("worker",)
        addresses = {a.type: a.address for a in (node.status.addresses or [])}
        states.append(
            NodeState(
                name=node.metadata.name,
                ready=conditions.get("Ready") == "True",
                roles=roles,
                internal_ip=addresses.get("InternalIP", ""),
                kubelet_version=node.status.node_info.kubelet_version,
            )
        )
    return sorted(states, key=lambda state: state.name)


def ready_endpoints(api: ApiClient, namespace: str, service: str) -> list[tuple[str, int]]:
    """(address, port) of every ready endpoint behind a Service, from its EndpointSlices."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sorted(
        {
            (address, int(port.port))
            for piece in slices.items
            for endpoint in piece.endpoints or []
            if endpoint.conditions is None or endpoint.conditions.ready is not False
            for address in endpoint.addresses
            for port in piece.ports or []
        }
    )


def unready_workloads(api: ApiClient, namespace: str) -> list[str]:
    """Deployments and DaemonSets in ``namespace`` not fully available, as readable lines."""
    apps = client.AppsV1Api(api)
    waiting = []
    for deployment in apps.list_namespaced_deployment(namespace).items:
        want = deployment.spec.replicas or 0
        have = deployment.status.available_replicas or 0
        if have < want:
            waiting.append(f"deployment/{deployment.metadata.name} {have}/{want}")
    for daemonset in apps.list_namespaced_daemon_set(namespace).items:
        want = daemonset.status.desired_number_scheduled or 0
        have = daemonset.status.number_available or 0
        if want == 0 or have < want:
            waiting.append(f"daemonset/{daemonset.metadata.name} {have}/{want}")
    return waiting


def pod_exec(
    api: ApiClient,
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None = None,
    timeout: float = 30,
) -> tuple[int, str, str]:
    """Run ``command`` in a pod's container: (exit code or -1, stdout, stderr).

    The exec runs on its own ApiClient: the client library's ``stream`` swaps the
    request method of the client it is given while it runs, so any other thread
    calling the API through that same client would get a websocket instead.
    """
    response = stream(
        client.CoreV1Api(ApiClient(api.configuration)).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        container=container,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    response.run_forever(timeout=timeout)
    out, err, code = response.read_stdout(), response.read_stderr(), response.returncode
    response.close()
    return (code if code is not None else -1), str(out), str(err)
