"""Engine environments for the scenarios: deployed once per session, reached from client pods.

Each environment gets a client namespace labelled ce.io/access=<env>: the
only namespaces its NetworkPolicies let reach engine-api. Tokens are minted
with the environment's own key, read from its Secret.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from deployer.actions import deploy as deploy_action
from deployer.actions import engine_images
from deployer.actions.engine import ensure_engine
from deployer.actions.engine_images import EngineImages
from deployer.lower.kube import ready_endpoints
from deployer.settings import Paths
from steps.support import releases
from steps.support.kube import Kube
from steps.support.workloads import CLIENT_DNS, assets_configmap

log = logging.getLogger(__name__)

AUDIENCE = "engine-api"
DEPLOYED_STEP = re.compile(r'the "(\w+)"(?: and "(\w+)")? environments? (?:is|are) deployed')
NEXT_KEY = "next"  # the key of the engine's next release among those built ahead
NEXT_RELEASE_STEP = "the engine's next release, which migrates the database, is built"
BAD_RELEASES_STEP = re.compile(r"bad releases are built and on the nodes: (.+)$", re.M)
CA_CONFIGMAP = "engine-ca"
CA_DIR = "/etc/engine-ca"
CA_FILE = f"{CA_DIR}/ca.crt"


@dataclass
class Environment:
    name: str
    namespace: str
    images: EngineImages
    client_namespace: str
    client_pod: str
    jwt_key: str

    @property
    def client(self) -> tuple[str, str]:
        """(namespace, pod) of the pod the suite sends this environment's requests from."""
        return self.client_namespace, self.client_pod

    @property
    def api_url(self) -> str:
        return f"https://engine-api.{self.namespace}.svc.cluster.local:8080"

    def token(
        self,
        role: str,
        subject: str = "acceptance-suite",
        key: str | None = None,
        lifetime_s: int = 900,
    ) -> str:
        """A bearer token for this environment; ``key``/``lifetime_s`` forge bad ones on purpose."""
        now = int(time.time())
        issued = min(now, now + lifetime_s - 60)  # an expired token was also issued earlier
        claims = {
            "sub": subject,
            "role": role,
            "iss": f"consciousness-engine/{self.name}",
            "aud": AUDIENCE,
            "iat": issued,
            "nbf": issued,
            "exp": now + lifetime_s,
        }
        return jwt.encode(claims, key or self.jwt_key, algorithm="HS256")


@dataclass(frozen=True)
class Rollout:
    """One deploy of given images to a live environment, with its wall-clock span."""

    images: EngineImages
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 1)


@dataclass
class HttpResult:
    status: int
    body: Any
    error: str = ""


@dataclass
class Environments:
    """Deploys each environment at most once per session."""

    paths: Paths
    kube: Kube
    target: deploy_action.Target
    toolbox_image: str
    deployed: dict[str, Environment] = field(default_factory=dict)
    images: EngineImages | None = None
    # One deploy at a time, whichever thread asks: deployed together, environments were
    # co-located by the scheduler (production's tail latency tripled).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    ahead: threading.Thread | None = field(default=None, repr=False)
    preloading: threading.Thread | None = field(default=None, repr=False)
    # Set when the releases may be loaded: after the timing scenarios, or when one needs them.
    preload_now: threading.Event = field(default_factory=threading.Event, repr=False)
    preload_stop: threading.Event = field(default_factory=threading.Event, repr=False)
    preloaded: dict[str, threading.Event] = field(default_factory=dict, repr=False)
    # Told of each deploy's outcome (the main lane publishes it for the side lane).
    announce: Callable[[str, Environment | BaseException], None] | None = None

    def session_images(self) -> EngineImages:
        """Built once per session: every environment runs the same build, even if HEAD moves."""
        if self.images is None:
            self.images = engine_images.build_engine_images(self.paths, ensure_engine(self.paths))
        return self.images

    def ensure(self, name: str) -> Environment:
        if name in self.deployed:  # not waiting behind another environment's deploy
            return self.deployed[name]
        with self.lock:
            if name not in self.deployed:
                try:
                    self.deployed[name] = self._deploy(name, self.session_images())
                except Exception as error:
                    if self.announce is not None:
                        self.announce(name, error)
                    raise
                if self.announce is not None:
                    self.announce(name, self.deployed[name])
            return self.deployed[name]

    def deploy_ahead(self, names: list[str]) -> None:
        """Deploy ``names``, one after the other, in the background while the first scenarios
        (which need none) run. A failure is only logged: the scenario that asks for that
        environment deploys it again and fails with the error."""

        def deploy_each() -> None:
            for name in names:
                try:
                    self.ensure(name)
                except Exception as error:  # noqa: BLE001 - raised again by ensure() in a scenario
                    log.warning("deploying %s ahead failed (its scenario retries): %s", name, error)
                    return

        log.info("deploying ahead, one after the other: %s", ", ".join(names))
        self.ahead = threading.Thread(target=deploy_each, name="deploy-ahead", daemon=True)
        self.ahead.start()

    def preload_releases(self, next_release: bool, bad: list[str]) -> None:
        """Build the releases the scenarios will roll out and put them on the nodes in
        the background, in the order the scenarios need them, once the environments are
        deployed and ``preload_now`` is set (after the @quiet scenarios: loading images
        beside R5.3's latency trials skews them). A scenario then asks for its release and
        finds it built and on the nodes (R2.5: 31 s saved). A failure is only logged: the
        scenario builds the release itself and fails with the error."""
        wanted = ([NEXT_KEY] if next_release else []) + bad
        if not wanted:
            return
        self.preloaded = {name: threading.Event() for name in wanted}

        def build_each() -> None:
            if self.ahead is not None:
                self.ahead.join()
            self.preload_now.wait()
            try:
                for name in wanted:
                    if self.preload_stop.is_set():
                        return
                    if name == NEXT_KEY:
                        self.build_next_release()
                    else:
                        self.bad_release(name)
                    self.preloaded[name].set()
            except Exception as error:  # noqa: BLE001 - built again by the scenario, which fails
                log.warning("building releases ahead failed (their scenarios retry): %s", error)
            finally:
                for done in self.preloaded.values():
                    done.set()

        self.preloading = threading.Thread(target=build_each, name="releases-ahead", daemon=True)
        self.preloading.start()

    def _preloaded(self, name: str) -> None:
        """A scenario needs release ``name`` now: let the preload start if it has not, and
        wait until it has that one."""
        self.preload_now.set()
        if threading.current_thread() is not self.preloading and name in self.preloaded:
            self.preloaded[name].wait()

    def _deploy(self, name: str, images: EngineImages) -> Environment:
        images = deploy_action.deploy(self.paths, name, self.target, images=images)
        namespace = deploy_action.namespace_for(name)
        secret = self.kube.core.read_namespaced_secret(deploy_action.SECRET_NAME, namespace)
        key = base64.b64decode(secret.data["jwt-key"]).decode()
        tls = self.kube.core.read_namespaced_secret(deploy_action.TLS_SECRET, namespace)
        client_ns, pod = self._client(name, base64.b64decode(tls.data["ca.crt"]).decode())
        environment = Environment(name, namespace, images, client_ns, pod, key)
        admitted = client_admitted(self.kube, environment)
        log.info("   %s's client pod admitted by every engine-api pod after %.1fs", name, admitted)
        return environment

    def adopt(self, name: str, images: EngineImages) -> None:
        """Another path (the delivery pipeline, a promotion) deployed ``images`` to ``name``."""
        if name in self.deployed:
            self.deployed[name].images = images

    def bad_release(self, name: str) -> EngineImages:
        """A bad release (R2.5), built (cached by its code) and on the nodes; usually
        already done by ``preload_releases``."""
        self._preloaded(name)
        return releases.build_and_load(self.paths, ensure_engine(self.paths), self.target, name)

    def build_next_release(self) -> EngineImages:
        """The engine's next release (a real code change with a schema migration, built
        like any release and cached by its code), already on the nodes, so that a
        rollout's time is the rollout's."""
        self._preloaded(NEXT_KEY)
        candidate = releases.build(self.paths, ensure_engine(self.paths), releases.NEXT_RELEASE)
        return deploy_action.ship_images(self.target, candidate)

    def roll_out(self, environment: Environment, images: EngineImages) -> Rollout:
        """Deploy ``images`` to an environment already up; time it until the rollout is done."""
        started = time.time()
        shipped = deploy_action.deploy(self.paths, environment.name, self.target, images=images)
        return Rollout(shipped, started, time.time())

    def _client(self, environment: str, ca_pem: str) -> tuple[str, str]:
        """A namespace with the access label of ``environment`` and a pod to send requests from.

        The pods of that namespace trust the environment's CA (ConfigMap ``engine-ca``)."""
        namespace = f"ce-test-client-{environment}-{uuid.uuid4().hex[:6]}"
        self.kube.create_namespace(
            namespace, {"ce.io/access": environment, "ce.test/suite": "acceptance"}
        )
        self.kube.create(namespace, assets_configmap())
        self.kube.create(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CA_CONFIGMAP},
                "data": {"ca.crt": ca_pem},
            },
        )
        self.kube.create(namespace, client_pod_manifest(self.toolbox_image))
        self.kube.wait_pods_ready(namespace, ["client"], timeout=120)
        return namespace, "client"

    def cleanup(self) -> None:
        if self.ahead is not None:
            self.ahead.join()
        self.preload_stop.set()  # what has not started is not needed any more
        self.preload_now.set()
        if self.preloading is not None:  # and the cluster is not deleted under a load
            self.preloading.join()
        for environment in self.deployed.values():
            self.kube.core.delete_namespace(environment.client_namespace, grace_period_seconds=0)


def scenario_steps(features: Path) -> dict[str, str]:
    """Every scenario's step text, by title, read once from the feature files."""
    steps_of: dict[str, str] = {}
    for feature in sorted(features.rglob("*.feature")):
        for block in re.split(r"^\s*Scenario(?: Outline)?:", feature.read_text(), flags=re.M)[1:]:
            name, _, text = block.partition("\n")
            steps_of[name.strip()] = text
    return steps_of


def needed_in_order(steps_of: dict[str, str], scenarios: Iterable[str]) -> list[str]:
    """The environments these scenarios (by title) ask to be deployed, in order of first use."""
    names: list[str] = []
    for scenario in scenarios:
        for match in DEPLOYED_STEP.finditer(steps_of.get(scenario, "")):
            names += [n for n in match.groups() if n and n not in names]
    return names


def releases_needed(steps_of: dict[str, str], scenarios: Iterable[str]) -> tuple[bool, list[str]]:
    """Whether these scenarios (by title) roll out the engine's next release, and the
    bad releases they ship, from their steps' text."""
    text = "\n".join(steps_of.get(scenario, "") for scenario in scenarios)
    bad = [
        name.strip()
        for names in BAD_RELEASES_STEP.findall(text)
        for name in names.split(",")
        if name.strip()
    ]
    return NEXT_RELEASE_STEP in text, list(dict.fromkeys(bad))


def client_pod_manifest(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "dnsConfig": CLIENT_DNS,
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    # Until the session deletes its namespace: a nightly run outlasts an hour.
                    "command": ["sleep", "infinity"],
                    "env": [{"name": "SSL_CERT_FILE", "value": CA_FILE}],
                    "volumeMounts": [
                        {"name": "probe", "mountPath": "/probe"},
                        {"name": "ca", "mountPath": CA_DIR},
                    ],
                }
            ],
            "volumes": [
                {"name": "probe", "configMap": {"name": "probe-assets"}},
                {"name": "ca", "configMap": {"name": CA_CONFIGMAP}},
            ],
        },
    }


def http(
    kube: Kube,
    namespace: str,
    pod: str,
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    timeout_s: int = 5,
    curl_args: tuple[str, ...] = (),
) -> HttpResult:
    """One HTTP request sent from a pod with curl; connection failures come back as status 0."""
    command = [
        "curl",
        *curl_args,
        "-s",
        "-m",
        str(timeout_s),
        "-X",
        method,
        "-o",
        "/dev/stdout",
        "-w",
        "\n%{http_code}",
        url,
    ]
    if (
        url.startswith("https://engine-api.")
        and "--cacert" not in curl_args
        and "-k" not in curl_args
    ):
        command[1:1] = ["--cacert", CA_FILE]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    code, output = kube.exec(namespace, pod, command, timeout=timeout_s + 10)
    text, _, status = output.rpartition("\n")
    if code != 0 or not status.strip().isdigit() or status.strip() == "000":
        return HttpResult(0, None, f"curl exit {code}: {output[-200:]}")
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return HttpResult(int(status), parsed)


def serving_pods(kube: Kube, environment: Environment, app: str) -> list[Any]:
    """The running pods of one of the environment's workloads (terminating ones left out)."""
    pods = kube.core.list_namespaced_pod(
        environment.namespace, label_selector=f"app.kubernetes.io/name={app}"
    ).items
    running = [
        pod
        for pod in pods
        if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None
    ]
    assert running, f"no running {app} pod in {environment.namespace}"
    return running


def client_admitted(kube: Kube, environment: Environment, timeout_s: float = 120) -> float:
    """Seconds until every engine-api pod accepts the environment's client pod and the
    Service answers it. A new pod waits for the nodes' policy engines to add its address:
    a scenario whose first request followed the deploy got "connection refused" (curl
    exit 7), which a negative control then counted as its scenario failing."""
    check = (
        "import sys; sys.path.insert(0, '/probe'); from admission import wait_admitted; "
        f"print(wait_admitted({environment.api_url + '/healthz'!r}, '', "
        f"{api_addresses(kube, environment)!r}, {timeout_s}))"
    )
    namespace, pod = environment.client
    code, output = kube.exec(namespace, pod, ["python3", "-c", check], timeout=timeout_s + 30)
    assert code == 0, f"{namespace}/{pod} was never admitted by engine-api: {output[-400:]}"
    return float(output.strip().splitlines()[-1])


def api_addresses(kube: Kube, environment: Environment) -> str:
    """ "ip:port,..." of every ready engine-api pod, for a client to wait until each admits it."""
    endpoints = ready_endpoints(kube.api, environment.namespace, "engine-api")
    assert endpoints, f"engine-api has no ready endpoint in {environment.namespace}"
    return ",".join(f"{address}:{port}" for address, port in endpoints)


def api_call(
    kube: Kube,
    environment: Environment,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    curl_args: tuple[str, ...] = (),
) -> HttpResult:
    """One request to ``environment``'s engine API, sent from its client pod."""
    return http(
        kube,
        environment.client_namespace,
        environment.client_pod,
        method,
        f"{environment.api_url}{path}",
        token,
        body,
        curl_args=curl_args,
    )


def write_session(
    kube: Kube, environment: Environment, token: str | None, title: str
) -> HttpResult:
    """POST a session with ``token`` from the environment's client pod."""
    return api_call(
        kube,
        environment,
        "POST",
        "/v1/sessions",
        token,
        {"title": title},
    )


def session_titles(kube: Kube, environment: Environment) -> set[str]:
    """Titles of the sessions a reader of ``environment`` can list."""
    listed = api_call(
        kube,
        environment,
        "GET",
        "/v1/sessions",
        environment.token("reader"),
    )
    assert listed.status == 200, f"{environment.name}: listing sessions answered {listed}"
    return {session["title"] for session in listed.body["sessions"]}
