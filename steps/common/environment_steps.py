"""Steps about the engine's environments: deployment, isolation, configuration, data."""

from __future__ import annotations

import base64
import json
import logging
import math
import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException
from pytest_bdd import given, parsers, then, when

from deployer.actions.deploy import render
from deployer.lower import proc
from deployer.lower.kube import pod_exec
from steps.support import workloads
from steps.support.differences import differences, load_allowed
from steps.support.environments import (
    Environment,
    Environments,
    api_addresses,
    api_call,
    http,
    serving_pods,
    session_titles,
    write_session,
)
from steps.support.host_cpu import CpuWindow, settle
from steps.support.kube import Kube
from steps.support.provider import ClusterProvider
from steps.support.report import RecordFigure

log = logging.getLogger(__name__)


@given(parsers.parse('the "{name}" environment is deployed'), target_fixture="environment")
def _(environments: Environments, name: str) -> Environment:
    return environments.ensure(name)


@given(
    parsers.parse('the "{first}" and "{second}" environments are deployed'),
    target_fixture="environment_pair",
)
def _(environments: Environments, first: str, second: str) -> tuple[Environment, Environment]:
    return environments.ensure(first), environments.ensure(second)


def reach(kube: Kube, source: Environment, url: str, token: str | None = None) -> int:
    """HTTP status of a GET from ``source``'s client pod (0: no connection).

    Reachability only: the server's certificate is not checked (-k), so another
    environment's CA can never pass for a NetworkPolicy refusal."""
    return http(
        kube,
        source.client_namespace,
        source.client_pod,
        "GET",
        url,
        token,
        timeout_s=4,
        curl_args=("-k",),
    ).status


@then("dev's client namespace reaches dev's API but not production's")
def _(kube: Kube, environment_pair: tuple[Environment, Environment]) -> None:
    dev, production = environment_pair
    # Control: the same client reaches its own environment, so a refusal below is the policy.
    assert reach(kube, dev, f"{dev.api_url}/healthz") == 200, "dev's client cannot reach dev's API"
    assert reach(kube, dev, f"{production.api_url}/healthz") == 0, "dev reached production's API"


def identity_probe(name: str, template: Any, image: str, plan: dict[str, Any]) -> dict[str, Any]:
    """A run-once pod carrying a workload's labels and service account (not its controller's
    pod-template-hash, so no ReplicaSet adopts it; never Ready, so no Service routes to it)."""
    return workloads.reach_probe(
        name, image, plan, dict(template.metadata.labels), template.spec.service_account_name
    )


@then(
    parsers.parse(
        "a pod with dev's {workload} identity reaches dev's database but nothing of production"
    )
)
def _(
    kube: Kube,
    environment_pair: tuple[Environment, Environment],
    toolbox_image: str,
    workload: str,
    record_figure: RecordFigure,
) -> None:
    dev, production = environment_pair
    template = kube.apps.read_namespaced_deployment(workload, dev.namespace).spec.template
    workers = serving_pods(kube, production, "engine-worker")
    plan = {
        # Control: the same pod opens its own environment's database.
        "control": {"host": f"engine-postgres.{dev.namespace}.svc.cluster.local", "port": 5432},
        "targets": [
            {
                "name": "production API",
                "host": f"engine-api.{production.namespace}.svc.cluster.local",
                "port": 8080,
            },
            {
                "name": "production Postgres",
                "host": f"engine-postgres.{production.namespace}.svc.cluster.local",
                "port": 5432,
            },
            *(
                {
                    "name": f"production worker {pod.metadata.name}",
                    "host": pod.status.pod_ip,
                    "port": 9090,
                }
                for pod in workers
                if pod.status.pod_ip
            ),
        ],
    }
    assert len(plan["targets"]) >= 3, f"production has no running worker to probe: {workers}"
    name = f"isolation-{workload}-{uuid.uuid4().hex[:6]}"
    kube.create(dev.namespace, identity_probe(name, template, toolbox_image, plan))
    try:
        summary = kube.summary_of(dev.namespace, name, timeout=180)
    finally:
        kube.delete_pod(dev.namespace, name)
    record_figure(f"{workload}_probe_admitted_s", summary["admitted_s"])
    unresolved = [r["name"] for r in summary["results"] if not r["resolved"]]
    assert not unresolved, f"names did not resolve, so isolation is not proven: {unresolved}"
    reached = [r["name"] for r in summary["results"] if r["connected"]]
    assert not reached, f"dev's {workload} identity reached {reached}"


@then("dev's service account cannot read production's secrets")
def _(kube: Kube, environment_pair: tuple[Environment, Environment]) -> None:
    dev, production = environment_pair
    as_dev = kube.as_service_account(dev.namespace, "engine-api")
    for namespace in (production.namespace, dev.namespace):
        try:
            as_dev.read_namespaced_secret("engine-secrets", namespace)
        except ApiException as error:
            assert error.status == 403, (
                f"expected 403 reading {namespace}'s secret, got {error.status}"
            )
        else:
            raise AssertionError(f"dev's service account read the Secret in {namespace}")


@then("each running engine-api reports its own environment's configuration")
def _(
    kube: Kube, environment_pair: tuple[Environment, Environment], record_figure: RecordFigure
) -> None:
    for environment in environment_pair:
        result = api_call(
            kube,
            environment,
            "GET",
            "/info",
            environment.token("reader"),
        )
        assert result.status == 200, (
            f"{environment.name} /info answered {result.status} {result.body}"
        )
        config = result.body["config"]
        assert config["environment"] == environment.name
        assert config["issuer"] == f"consciousness-engine/{environment.name}"
        assert config["public_hostname"] == f"{environment.name}.engine.local"
        assert config["jwt_key"] == "<redacted>" and config["database_url"] == "<redacted>"
        record_figure(f"{environment.name}_log_level", config["log_level"])
        record_figure(f"{environment.name}_db_pool_max", config["db_pool_max"])
    first, second = environment_pair
    secrets_ = [
        kube.core.read_namespaced_secret("engine-secrets", e.namespace).data
        for e in environment_pair
    ]
    assert base64.b64decode(secrets_[0]["jwt-key"]) != base64.b64decode(secrets_[1]["jwt-key"]), (
        f"{first.name} and {second.name} share a signing key"
    )


@when("a session is written in staging", target_fixture="written_title")
def _(kube: Kube, environment_pair: tuple[Environment, Environment]) -> str:
    staging, _ = environment_pair
    title = f"staging-only-{uuid.uuid4().hex[:8]}"
    result = write_session(kube, staging, staging.token("writer"), title)
    assert result.status == 201, f"staging refused the write: {result.status} {result.body}"
    assert title in session_titles(kube, staging), "staging lost its own write"
    return title


@then("it is not visible in production")
def _(kube: Kube, environment_pair: tuple[Environment, Environment], written_title: str) -> None:
    staging, production = environment_pair
    assert written_title not in session_titles(kube, production)
    # Staging's credentials are worthless in production: another key and issuer.
    crossed = api_call(
        kube,
        production,
        "GET",
        "/v1/sessions",
        staging.token("reader"),
    )
    assert crossed.status == 401, f"production accepted a staging token ({crossed.status})"


ENGINE_PYTHON = "/usr/bin/python3.11"  # the engine image's only interpreter


@then("neither environment's engine can open the other's database, while each opens its own")
def _(
    kube: Kube, environment_pair: tuple[Environment, Environment], record_figure: RecordFigure
) -> None:
    """Acting as the engine itself (its own pod, its own network identity): a bug or a
    stolen pod in one environment cannot even reach the other's data. Opening its own
    database in the same probe is the control that the probe can connect at all."""
    probe = workloads.reach_script()
    for here, there in (environment_pair, environment_pair[::-1]):
        pod = serving_pods(kube, here, "engine-api")[0].metadata.name
        plan = {
            "control": {"host": "engine-postgres", "port": 5432},
            "targets": [
                {
                    "name": f"{there.name}'s engine-postgres",
                    "host": f"engine-postgres.{there.namespace}.svc",
                    "port": 5432,
                }
            ],
        }
        code, output = kube.exec(
            here.namespace,
            pod,
            [ENGINE_PYTHON, "-c", probe, json.dumps(plan)],
            container="engine-api",
            timeout=120,
        )
        assert code == 0, f"{here.name}'s engine-api never opened its own database: {output}"
        (result,) = json.loads(output.strip().splitlines()[-1])["results"]
        assert result["resolved"], f"{result['name']} did not resolve: {result['error']}"
        assert not result["connected"], f"{here.name}'s engine-api opened {result['name']}"
        record_figure(f"{here.name}_engine_to_{there.name}_database", result["error"])


LIVE_KINDS = {
    "Deployment": "spec",
    "Rollout": "spec",
    "StatefulSet": "spec",
    "NetworkPolicy": "spec",
    "HorizontalPodAutoscaler": "spec",
    "PodDisruptionBudget": "spec",
    "Role": "rules",
    "ConfigMap": "data",
    "Service": "spec.ports",
}


def live_objects(
    kubectl: Any, namespace: str, documents: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The live counterparts of ``documents``, reduced to the fields we own (no status, no IDs)."""
    reduced = []
    for document in documents:
        kind = document["kind"]
        if kind not in LIVE_KINDS:
            continue
        live = kubectl(namespace, kind, document["metadata"]["name"])
        value: Any = live
        for part in LIVE_KINDS[kind].split("."):
            value = value.get(part, {})
        reduced.append(
            {
                "kind": kind,
                "metadata": {"name": document["metadata"]["name"]},
                LIVE_KINDS[kind]: value,
            }
        )
    return reduced


@then("staging and production differ only in the allowed fields, rendered and live")
def _(
    environment_pair: tuple[Environment, Environment],
    environments: Environments,
    record_figure: RecordFigure,
) -> None:
    staging, production = environment_pair
    target = environments.target
    allowed = load_allowed(
        environments.paths.repo / "infra" / "environments" / "allowed-differences.yaml"
    )
    rendered = [
        render(environments.paths, target.kubectl, env.name, env.images) for env in environment_pair
    ]
    unexpected = differences(rendered[0], rendered[1], allowed)
    assert not unexpected, (
        "rendered staging and production differ beyond the allowed fields:\n"
        + "\n".join(unexpected)
    )

    def kubectl_get(namespace: str, kind: str, name: str) -> dict[str, Any]:
        output = proc.run(
            [
                target.kubectl,
                "--kubeconfig",
                target.kubeconfig,
                "-n",
                namespace,
                "get",
                kind,
                name,
                "-o",
                "json",
            ],
            timeout=60,
            describe="kubectl get",
        )
        document: dict[str, Any] = json.loads(output)
        return document

    live = [
        live_objects(kubectl_get, env.namespace, docs)
        for env, docs in zip(environment_pair, rendered, strict=True)
    ]
    unexpected_live = differences(live[0], live[1], allowed)
    assert not unexpected_live, (
        "live staging and production differ beyond the allowed fields:\n"
        + "\n".join(unexpected_live)
    )
    record_figure("objects_compared", len(live[0]))
    record_figure("allowed_difference_patterns", len(allowed))


# Paired trials: dev and production get the same load at the same moment, each from its
# own client namespace, so whatever else the 2-core machine does then (an environment
# starting up, Prometheus compacting, the scheduler) weighs on both alike. Sequential
# trials let it decide the verdict: production lost on p99 (414 against 398 ms) in a
# run where its capacity had come out at 1.18 x dev's, so 1.2 x dev's capacity loaded
# production too. Two phases: capacity (closed loop, as fast as the clients can go),
# then latency at one fixed arrival rate halfway between the two capacities, counted from
# each request's due time so that a queue shows; three latency trials, each environment's
# median p99 counts. Halfway, not the geometric mean: with production's generator held
# to a rate, dev gets more of the machine than in the capacity phase (81 requests/s
# flat out there, 105-125 at the geometric mean, 126 requests/s: not saturated).
LOAD = {"CONCURRENCY": "8", "DURATION": "15", "MAX_REQUESTS": "60000"}
LATENCY_TRIALS = 3
PHASES = ["capacity", *(f"latency_{trial}" for trial in range(1, LATENCY_TRIALS + 1))]
MOST_TRIALS = LATENCY_TRIALS // 2 + 1  # the median trial is one of any majority
MAX_ERROR_RATIO = 0.01
# A margin, not "lower": two equal environments, paired, differ by chance.
P99_RATIO_AT_MOST = 0.5
KEPT_UP = 0.95  # an environment answered at least this share of the offered rate
RATE_RAISE = 1.3
RATE_LOWER = 0.8
MAX_RATE_MOVES = 5
# Production loaded near its own capacity answers slowly too, so a rate that separates the
# two only there says little (a CI run judged at 74.9 requests/s against production's 81.4
# flat out: p99 0.58 x dev's). The rate stays at or under this share of production's
# capacity; when most trials at the rate it ends on do not separate them, the comparison
# is made once more from a new capacity phase, and that one is judged as it comes.
# Decided on rates and capacities alone, never on p99.
PRODUCTION_HEADROOM = 0.85
COMPARISONS = 2
# Before the first load, the host (every node of a kind cluster) gets up to a minute to
# come under this share of its CPU for one window: the deploys and scenarios just before
# (an environment's first minutes, namespaces being deleted) then weigh on neither side.
SETTLE_BUSY_BELOW_PCT = 60.0
SETTLE_WINDOW_S = 5.0
SETTLE_DEADLINE_S = 60.0
# Each load runs in its environment's standing client pod (an exec, no pod to create:
# 28 s a trial became about 19), both starting this long after they are asked to, more on
# a retry; a side that starts later than the skew voids the pair, which is run again.
START_SLACK_S = 3.0
MAX_START_SKEW_S = 1.0
PAIR_ATTEMPTS = 3
LOAD_SCRIPT = "/probe/http_load.py"


def run_paired_load(
    kube: Kube, pair: tuple[Environment, ...], path: str, rate: float = 0, host: bool = False
) -> dict[str, dict[str, Any]]:
    """The same bounded load on each environment of ``pair`` at the same moment; with
    ``host`` (the cluster runs on this machine) each result says how busy the host was."""
    late = 0.0
    for attempt in range(1, PAIR_ATTEMPTS + 1):
        start_at = time.time() + START_SLACK_S * attempt
        timeout = START_SLACK_S * attempt + float(LOAD["DURATION"]) + 60

        def load(
            environment: Environment, start_at: float = start_at, timeout: float = timeout
        ) -> dict[str, Any]:
            env = {
                **LOAD,
                "RATE": str(rate),
                "START_AT": f"{start_at:.3f}",
                "URL": f"{environment.api_url}{path}",
                "TOKEN": environment.token("reader"),
                "ADMIT": api_addresses(kube, environment),
            }
            namespace, pod = environment.client
            command = ["env", *(f"{k}={v}" for k, v in env.items()), "python3", "-u", LOAD_SCRIPT]
            code, out, err = pod_exec(kube.api, namespace, pod, command, timeout=timeout)
            last = out.strip().splitlines()[-1] if out.strip() else ""
            assert code == 0 and last.startswith("{"), (
                f"the load in {namespace}/{pod} failed (exit {code}): {(out + err)[-500:]}"
            )
            result: dict[str, Any] = json.loads(last)
            return result

        window = CpuWindow()
        with ThreadPoolExecutor(len(pair)) as pool:
            results = dict(zip([env.name for env in pair], pool.map(load, pair), strict=True))
        cpu = window.share()
        late = max(result["start_late_s"] for result in results.values())
        if late <= MAX_START_SKEW_S:
            for result in results.values():
                result["pair_attempts"] = attempt
                result["host_busy_pct"] = cpu.busy_pct if host else "n/a"
                result["host_steal_pct"] = cpu.steal_pct if host else "n/a"
            return results
        log.warning("paired load: a side started %.1f s late; again with more slack", late)
    raise AssertionError(
        f"the paired loads never started within {MAX_START_SKEW_S} s of each other "
        f"in {PAIR_ATTEMPTS} attempts (last: {late} s late)"
    )


@when(
    "the same bounded load is sent to both at the same moment from inside the cluster",
    target_fixture="load_results",
)
def _(
    kube: Kube, environment_pair: tuple[Environment, Environment], cluster_provider: ClusterProvider
) -> dict[str, dict[str, Any]]:
    # The host is the whole cluster only for a kind cluster built here.
    host = cluster_provider.kind_name is not None
    settled: dict[str, Any] = {"settle_wait_s": "n/a", "host_before": "n/a"}
    if host:
        waited, share = settle(SETTLE_BUSY_BELOW_PCT, SETTLE_WINDOW_S, SETTLE_DEADLINE_S)
        settled = {"settle_wait_s": waited, "host_before": str(share)}
        log.info("host settled after %.0f s: %s", waited, share)
    restarts_before = {env.name: api_restarts(kube, env) for env in environment_pair}
    inconclusive: list[str] = []
    for attempt in range(1, COMPARISONS + 1):
        results = compare(kube, environment_pair, host)
        moved = results["rate_moves"]
        if separated(moved["verdicts"]) or attempt == COMPARISONS:
            break
        verdicts = " ".join(v or "separated" for v in moved["verdicts"])
        inconclusive.append(f"{moved['rate']}/s: {verdicts}")
        log.warning(
            "no rate under %d %% of production's capacity separated the two (%s): "
            "comparing once more from capacity",
            round(100 * PRODUCTION_HEADROOM),
            inconclusive[-1],
        )
    for env in environment_pair:
        restarts = api_restarts(kube, env) - restarts_before[env.name]
        for trial in range(1, LATENCY_TRIALS + 1):
            results[f"{env.name}_latency_{trial}"]["api_restarts"] = restarts
    results["comparison"] = {
        **settled,
        "comparisons": attempt,
        "inconclusive": "; ".join(inconclusive) or "none",
        "placement": placement(kube, environment_pair),
    }
    return results


def compare(
    kube: Kube, environment_pair: tuple[Environment, Environment], host: bool
) -> dict[str, dict[str, Any]]:
    """One comparison: paired capacity, then paired latency trials at a rate that dev
    cannot carry and production can (see RateBracket)."""
    results: dict[str, dict[str, Any]] = {}
    capacity = run_paired_load(kube, environment_pair, "/v1/sessions", host=host)
    for name, result in capacity.items():
        results[f"{name}_capacity"] = result
    ceiling = PRODUCTION_HEADROOM * capacity["production"]["rps"]
    rate = round(min((capacity["dev"]["rps"] + capacity["production"]["rps"]) / 2, ceiling), 1)
    moves: list[str] = []
    # Production is taken to fall behind above the ceiling: the rate never goes there.
    bracket = RateBracket(missed_by_production=ceiling)
    while True:
        # The p99 comparison means something only at a rate production carries and dev
        # does not. Dev keeping up: with production's clients held to a rate, dev gets
        # more of the machine than in the capacity phase (a full run saw it). Production
        # falling behind: the machine was busier than when capacity was measured (a CI
        # run: dev 31.7 requests/s flat out, both queues grew at 64.8). The verdict takes
        # each environment's median trial, so the rate moves when most trials at it do
        # not separate the two (one noisy trial no longer starts them all again: a CI
        # run moved 5 times and spent 6 minutes); then all trials run at the new rate.
        # A production no faster than dev has no such rate: the moves run out and the
        # p99 margin fails.
        trials: list[dict[str, dict[str, Any]]] = []
        verdicts: list[str] = []
        move, moved_to = "", None
        while len(trials) < LATENCY_TRIALS and moved_to is None:
            latency = run_paired_load(kube, environment_pair, "/v1/sessions", rate, host)
            trials.append(latency)
            verdicts.append(rate_move(latency["dev"]["rps"], latency["production"]["rps"], rate))
            if len(moves) < MAX_RATE_MOVES:
                move, moved_to = bracket.settle(rate, verdicts)
        if moved_to is None:
            break
        moves.append(move)
        rate = round(moved_to, 1)
        log.info("latency trials again at %s requests/s (%s)", rate, ", ".join(moves))
    for env in environment_pair:
        for trial, latency in enumerate(trials, start=1):
            results[f"{env.name}_latency_{trial}"] = latency[env.name]
    results["rate_moves"] = {"moves": moves, "rate": rate, "verdicts": verdicts}
    return results


def placement(kube: Kube, environment_pair: tuple[Environment, Environment]) -> str:
    """Which node ran each environment's engine-api, Postgres and client pods: with nodes
    sharing 2 cores, what shares a node with what weighs on a comparison."""
    where = []
    for env in environment_pair:
        nodes = {
            app: sorted(pod.spec.node_name for pod in serving_pods(kube, env, app))
            for app in ("engine-api", "engine-postgres")
        }
        client_ns, client_pod = env.client
        nodes["client"] = [kube.core.read_namespaced_pod(client_pod, client_ns).spec.node_name]
        on = ", ".join(f"{app} {' '.join(names)}" for app, names in nodes.items())
        where.append(f"{env.name}: {on}")
    return "; ".join(where)


@dataclass
class RateBracket:
    """The highest rate dev kept up with and the lowest one production fell behind at:
    a rate that separates the two lies between. Fixed steps jumped over a narrow band
    (a run went 78, 101 dev kept up, 132 production fell behind, 106: dev kept up, and
    the moves ran out), so once both ends are known the next rate is their middle.
    Started with a ceiling (a share of production's capacity), a raise goes halfway to it
    instead of 30 % up, which once overshot to 0.86 x production's capacity."""

    kept_by_dev: float = 0.0
    missed_by_production: float = math.inf

    def move(self, rate: float, direction: str) -> float | None:
        """The next rate to try after ``direction`` ("up" or "down") at ``rate``, or None
        when no rate is left between what dev carried and what production did not."""
        if direction == "up":
            self.kept_by_dev = max(self.kept_by_dev, rate)
        else:
            self.missed_by_production = min(self.missed_by_production, rate)
        if self.kept_by_dev >= KEPT_UP * self.missed_by_production:
            return None  # closer than the 95 % rule can tell apart
        if math.isinf(self.missed_by_production):
            return rate * RATE_RAISE
        if not self.kept_by_dev:
            return rate * RATE_LOWER
        return math.sqrt(self.kept_by_dev * self.missed_by_production)

    def settle(self, rate: float, verdicts: list[str]) -> tuple[str, float | None]:
        """After the trials so far at ``rate`` (each "", "up" or "down", see rate_move):
        the move and the next rate once most trials cannot separate the two, else
        ("", None): go on, or judge these trials. Dev keeping up in one trial and
        production falling behind in another leaves no rate between: judged here."""
        misses = Counter(verdict for verdict in verdicts if verdict)
        if sum(misses.values()) < MOST_TRIALS:
            return "", None
        most = max(misses.values())
        directions = sorted(d for d, n in misses.items() if n == most)
        moved_to = None
        for direction in directions:
            moved_to = self.move(rate, direction)
        return ("+".join(directions), moved_to) if moved_to is not None else ("", None)


def separated(verdicts: list[str]) -> bool:
    """Whether most judged trials separated the two (dev fell behind, production kept up).
    One trial each way is no separation either: a run judged its median trials at 126.5
    requests/s after "separated, down, up" and passed at 0.49 x dev's p99, a hair from
    failing; such a comparison is made again instead (about 100 s in a full run)."""
    return verdicts.count("") >= MOST_TRIALS


def rate_move(dev_rps: float, production_rps: float, rate: float) -> str:
    """Which way the latency rate should move: "up" when dev kept up with it, "down" when
    production did not, "" when it separates the two."""
    if dev_rps >= KEPT_UP * rate:
        return "up"
    if production_rps < KEPT_UP * rate:
        return "down"
    return ""


def api_restarts(kube: Kube, environment: Environment) -> int:
    """Container restarts of the environment's engine-api pods (a failed probe under load shows)."""
    pods = kube.core.list_namespaced_pod(
        environment.namespace, label_selector="app.kubernetes.io/name=engine-api"
    ).items
    return sum(
        status.restart_count for pod in pods for status in (pod.status.container_statuses or [])
    )


@then(
    parsers.parse(
        "production serves at least {at_least:f} x dev's requests per second, "
        "at under half its p99 latency"
    )
)
def _(
    load_results: dict[str, dict[str, Any]], at_least: float, record_figure: RecordFigure
) -> None:
    moved = load_results.pop("rate_moves")
    for key, value in load_results.pop("comparison").items():
        record_figure(key, value)
    record_figure("latency_rate_moves", " ".join(moved["moves"]) or "none")
    # Per judged trial: "" separated the two, "up" dev kept up, "down" production did not.
    record_figure("latency_trial_verdicts", " ".join(v or "separated" for v in moved["verdicts"]))
    for phase, result in load_results.items():
        for key in (
            "rps",
            "p50_ms",
            "p99_ms",
            "errors",
            "error_kinds",
            "admitted_after_s",
            "start_late_s",
            "pair_attempts",
        ):
            record_figure(f"{phase}_{key}", result[key])
    for phase in PHASES:  # one host for the pair: its shares are the same on both sides
        for key in ("host_busy_pct", "host_steal_pct"):
            record_figure(f"{phase}_{key}", load_results[f"dev_{phase}"][key])
    record_figure("latency_phase_rate_rps", moved["rate"])
    last = f"latency_{LATENCY_TRIALS}"
    for env in ("dev", "production"):
        record_figure(f"{env}_api_restarts", load_results[f"{env}_{last}"]["api_restarts"])
    for phase, result in load_results.items():
        # Generous: timeouts under saturation on 2 shared cores are noise; they are
        # recorded above and would show here if they grew.
        assert result["errors"] <= MAX_ERROR_RATIO * (result["requests"] + result["errors"]), (
            f"{phase}: {result['errors']} failed requests {result['error_kinds']}"
        )
    capacity = {env: load_results[f"{env}_capacity"]["rps"] for env in ("dev", "production")}
    p99 = {
        env: statistics.median(
            load_results[f"{env}_latency_{trial}"]["p99_ms"]
            for trial in range(1, LATENCY_TRIALS + 1)
        )
        for env in ("dev", "production")
    }
    record_figure("dev_median_latency_p99_ms", p99["dev"])
    record_figure("production_median_latency_p99_ms", p99["production"])
    ratio = round(capacity["production"] / capacity["dev"], 2)
    record_figure("production_capacity_over_dev", ratio)
    record_figure("production_p99_over_dev", round(p99["production"] / p99["dev"], 2))
    assert ratio >= at_least, f"production does not serve {at_least} x dev's requests/s: {capacity}"
    # Dev is offered more than it can carry (its queue grows for the whole trial) and
    # production less: measured 0.22-0.25 x dev's p99 when production is tuned, 0.79 x
    # with production sized like dev but logging less (so "lower" alone would pass that).
    assert p99["production"] <= P99_RATIO_AT_MOST * p99["dev"], (
        f"production's median p99 is not under {P99_RATIO_AT_MOST} x dev's: {p99} ms "
        f"at {moved['rate']} requests/s; trials: {trial_table(load_results)}"
    )


def trial_table(load_results: dict[str, dict[str, Any]]) -> str:
    """Each phase's requests/s, p99 and host CPU, for a failure to say what the machine did."""
    rows = []
    for phase in PHASES:
        dev, production = load_results[f"dev_{phase}"], load_results[f"production_{phase}"]
        rows.append(
            f"{phase}: dev {dev['rps']}/s p99 {dev['p99_ms']} ms, production "
            f"{production['rps']}/s p99 {production['p99_ms']} ms, host busy "
            f"{dev['host_busy_pct']} % steal {dev['host_steal_pct']} %"
        )
    return "; ".join(rows)
