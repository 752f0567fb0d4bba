"""Who owns a kind cluster: a run's heartbeat in the cluster, a record of intent beside it.

A nightly or CI run that was killed (a reboot, a stopped session) leaves its ephemeral
cluster behind; the next run must not fail on it forever, nor delete a cluster another run
is still using or one a person kept. Two facts decide:

* the **owner record** (``clusters/<name>.owner.json``), written before ``kind create``:
  whether the cluster is ephemeral (a suite run deletes it at its end) or kept;
* the **run lease**, a ``coordination.k8s.io`` Lease in ``kube-system`` that the run
  renews while it uses the cluster. A lease older than its duration is a dead run's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.errors import ConfigError
from deployer.lower.kube import api_client
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "consciousness-engine-suite-run"
LEASE_SECONDS = 180  # a run renews every RENEW_SECONDS; a CPU-starved renewal still fits
RENEW_SECONDS = 30.0
CREATING_GRACE_SECONDS = 15 * 60  # a cluster younger than this may still be coming up
WAIT_FOR_OTHER_RUN_SECONDS = 75 * 60  # one whole acceptance run, with room
POLL_SECONDS = 10.0


@dataclass(frozen=True)
class OwnerRecord:
    ephemeral: bool  # a suite run made it and deletes it at its end
    created: float  # Unix time, written just before `kind create`
    holder: str


def record_path(paths: Paths, name: str) -> Path:
    return paths.clusters / f"{name}.owner.json"


def write_record(paths: Paths, name: str, ephemeral: bool, created: float | None = None) -> None:
    path = record_path(paths, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"ephemeral": ephemeral, "created": created or time.time(), "holder": run_identity()}
    path.write_text(json.dumps(record))


def read_record(paths: Paths, name: str) -> OwnerRecord | None:
    try:
        data = json.loads(record_path(paths, name).read_text())
        return OwnerRecord(bool(data["ephemeral"]), float(data["created"]), str(data["holder"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mark_kept(paths: Paths, name: str) -> None:
    """A run asked to keep its cluster: the next run must not take it for a leftover."""
    record = read_record(paths, name)
    write_record(paths, name, ephemeral=False, created=record.created if record else None)


def forget(paths: Paths, name: str, only_if_mine: bool = False) -> None:
    """Remove the record; with ``only_if_mine``, not one a newer run wrote since."""
    record = read_record(paths, name)
    if only_if_mine and record is not None and record.holder != run_identity():
        return
    record_path(paths, name).unlink(missing_ok=True)


def run_identity() -> str:
    """This process's name in records and leases (stable for its lifetime)."""
    return _RUN_ID


_RUN_ID = f"{socket.gethostname()}/pid-{os.getpid()}/{uuid.uuid4().hex[:8]}"


def lease_age(kubeconfig: Path) -> tuple[str, float] | None:
    """(holder, seconds since its last renewal) of the run lease, or None when there is
    none or the API does not answer (a stopped or half-made cluster)."""
    if not kubeconfig.exists():
        return None
    try:
        api = client.CoordinationV1Api(api_client(kubeconfig, retries=0))
        lease = api.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, _request_timeout=10)
    except Exception:  # noqa: BLE001 - any failure means no live run can be seen
        return None
    spec = lease.spec
    if spec is None or spec.renew_time is None:
        return None
    return spec.holder_identity or "?", (datetime.now(UTC) - spec.renew_time).total_seconds()


def live_holder(kubeconfig: Path) -> str | None:
    seen = lease_age(kubeconfig)
    if seen is None or seen[1] > LEASE_SECONDS:
        return None
    return seen[0]


class RunLease:
    """Renew the run lease from a daemon thread while the suite uses the cluster."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = client.CoordinationV1Api(api_client(kubeconfig))
        self.holder = run_identity()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._renew_forever, name="run-lease", daemon=True)

    def start(self) -> RunLease:
        """Take the lease now (the thread retries if the API does not answer yet: the run's
        own first calls then report the cluster's state, not this bookkeeping)."""
        try:
            self._renew()
        except Exception as error:  # noqa: BLE001 - retried every RENEW_SECONDS
            log.warning("run lease not taken yet: %s", error)
        self.thread.start()
        return self

    def stop(self, *, delete: bool) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        if delete:
            try:
                self.api.delete_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, _request_timeout=10)
            except Exception as error:  # noqa: BLE001 - a stale lease only delays the next run
                log.warning("could not delete the run lease: %s", error)

    def _renew_forever(self) -> None:
        while not self.stopped.wait(RENEW_SECONDS):
            try:
                self._renew()
            except Exception as error:  # noqa: BLE001 - retried at the next beat
                log.warning("run lease not renewed: %s", error)

    def _renew(self) -> None:
        spec = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": LEASE_SECONDS,
            # MicroTime: RFC 3339 with exactly six fractional digits.
            "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            self.api.patch_namespaced_lease(
                LEASE_NAME, LEASE_NAMESPACE, {"spec": spec}, _request_timeout=10
            )
        except ApiException as error:
            if error.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                "spec": spec,
            }
            self.api.create_namespaced_lease(LEASE_NAMESPACE, body, _request_timeout=10)


def await_no_live_run(
    paths: Paths, name: str, kubeconfig: Path, exists: Callable[[], bool]
) -> bool:
    """Wait while another live run uses (or is creating) cluster ``name``.

    Return True when the cluster is still there afterwards (a leftover or a kept cluster),
    False when it is gone (the other run deleted it at its end).
    """

    def settled() -> bool | None:
        if not exists():
            return True
        if live_holder(kubeconfig) is not None:
            return None
        record = read_record(paths, name)
        if record and record.ephemeral and time.time() - record.created < CREATING_GRACE_SECONDS:
            return None  # still being created: its run starts the lease once the API is up
        return True

    if settled():
        return exists()
    log.info(
        "cluster %r is in use by another run (or being created); waiting up to %.0f min",
        name,
        WAIT_FOR_OTHER_RUN_SECONDS / 60,
    )
    try:
        _, waited = wait_until(
            settled,
            timeout=WAIT_FOR_OTHER_RUN_SECONDS,
            interval=POLL_SECONDS,
            describe=f"the run using cluster {name!r} to end",
        )
    except WaitTimeout as error:
        raise ConfigError(f"cluster {name!r} is still in use by another run: {error}") from None
    log.info("   the other run ended after %.0f s", waited)
    return exists()


def leftover_of_interrupted_run(paths: Paths, name: str) -> bool:
    """True when no live run holds the cluster and its record says a suite run made it to
    delete it: the run was interrupted and nobody asked to keep it."""
    record = read_record(paths, name)
    return record is not None and record.ephemeral
