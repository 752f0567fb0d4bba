"""Prometheus' HTTP API, reached through the Kubernetes API server's service proxy.

The proxy needs nothing but the kubeconfig: no port-forward, no exposed port,
and it works the same on kind and on a managed cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from deployer.errors import ClusterError

NAMESPACE = "ce-monitoring"


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    timestamp: float
    value: float


@dataclass(frozen=True)
class ServiceProxy:
    """HTTP calls to one in-cluster Service port, through the API server."""

    api: client.ApiClient
    service: str
    namespace: str = NAMESPACE

    def call(self, method: str, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        """The answer parsed as JSON when it is one JSON document, else its text."""
        raw = self.text(method, path, params)
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def answers(self, path: str) -> bool:
        """Whether a GET of ``path`` succeeds (readiness and health endpoints)."""
        try:
            self.text("GET", path)
        except ClusterError:
            return False
        return True

    def text(self, method: str, path: str, params: list[tuple[str, str]] | None = None) -> str:
        url = f"/api/v1/namespaces/{self.namespace}/services/{self.service}/proxy/{path}"
        try:
            response = self.api.call_api(
                url,
                method,
                query_params=params or [],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=30,
            )
        except ApiException as error:
            raise ClusterError(
                f"{self.service} in {self.namespace} answered {error.status} to {method} "
                f"/{path}: {str(error.body)[:300]}"
            ) from None
        return str(response[0].data.decode())


class Prometheus:
    """Queries, targets, rules and alerts of the cluster's Prometheus."""

    def __init__(self, api: client.ApiClient, service: str = "prometheus:web") -> None:
        self.proxy = ServiceProxy(api, service)

    def _data(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        body = self.proxy.call("GET", path, params)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ClusterError(f"Prometheus refused /{path} {params}: {str(body)[:300]}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        params = [("query", expr)] + ([("time", f"{at:.3f}")] if at is not None else [])
        data = self._data("api/v1/query", params)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][0]), float(data["result"][1]))]
        return [
            Sample(item["metric"], float(item["value"][0]), float(item["value"][1]))
            for item in data["result"]
        ]

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = self._data(
            "api/v1/query_range",
            [
                ("query", expr),
                ("start", f"{start:.3f}"),
                ("end", f"{end:.3f}"),
                ("step", str(step)),
            ],
        )
        return [
            (item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    def targets(self) -> list[dict[str, Any]]:
        return list(self._data("api/v1/targets", [("state", "active")])["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._data("api/v1/alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._data("api/v1/rules")["groups"] for rule in group["rules"]]

    def flags(self) -> dict[str, str]:
        return dict(self._data("api/v1/status/flags"))

    def runtime(self) -> dict[str, Any]:
        return dict(self._data("api/v1/status/runtimeinfo"))

    def reload(self) -> None:
        """Re-read the configuration (--web.enable-lifecycle), e.g. after a new CA file."""
        self.proxy.call("POST", "-/reload")

    def ready(self) -> bool:
        return self.proxy.answers("-/ready")
