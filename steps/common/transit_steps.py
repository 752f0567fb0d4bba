"""Steps that try the engine's network hops with and without TLS and with foreign certificates."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from cryptography import x509
from pytest_bdd import then, when

from deployer.actions import deploy as deploy_action
from deployer.lower import certificates
from deployer.lower.waiting import wait_until
from steps.support import workloads
from steps.support.environments import (
    Environment,
    Environments,
    Rollout,
    api_call,
    http,
    serving_pods,
)
from steps.support.kube import Kube
from steps.support.report import RecordFigure

PSQL = "/usr/lib/postgresql/15/bin/psql"
APP_CONNECTIONS = (
    "SELECT a.application_name, host(a.client_addr), s.ssl, s.version, s.client_dn "
    "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
    "WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL"
)
# Run by the engine image's own interpreter and libpq (psycopg), as the engine connects.
ATTEMPTS = """
import json, os, sys, psycopg
url = open('/etc/engine/secrets/database-url').read().strip()
foreign = json.loads(sys.argv[1])
for name in ('crt', 'key'):
    path = f'/tmp/foreign.{name}'
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as f:
        f.write(foreign[name])
out = {}
MINE = 'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()'
def attempt(label, **options):
    try:
        with psycopg.connect(url, connect_timeout=5, **options) as c:
            row = c.execute(MINE).fetchone()
            out[label] = {'ok': True, 'ssl': row[0], 'version': row[1]}
    except psycopg.Error as e:
        out[label] = {'ok': False, 'error': str(e).strip().splitlines()[-1][:300]}
attempt('engine certificate')
attempt('plaintext', sslmode='disable')
attempt('no client certificate', sslcert='/nonexistent', sslkey='/nonexistent')
attempt('other environment certificate', sslcert='/tmp/foreign.crt', sslkey='/tmp/foreign.key')
print(json.dumps(out))
"""


def engine_pod(kube: Kube, environment: Environment) -> str:
    name: str = serving_pods(kube, environment, "engine-api")[0].metadata.name
    return name


@then("every engine connection to dev's Postgres uses TLS 1.3 with a verified client certificate")
def _(
    kube: Kube,
    environment_pair: tuple[Environment, Environment],
    record_figure: RecordFigure,
) -> None:
    dev, _ = environment_pair
    command = [
        PSQL,
        "-h",
        "/tmp",
        "-U",
        "engine",
        "-d",
        f"engine_{dev.name}",
        "-At",
        "-F",
        "|",
        "-c",
        APP_CONNECTIONS,
    ]
    code, output = kube.exec(dev.namespace, "engine-postgres-0", command, container="postgres")
    assert code == 0, f"cannot list connections in Postgres: {output[-300:]}"
    rows = [line.split("|") for line in output.strip().splitlines() if line]
    record_figure("postgres_app_connections", len(rows))
    record_figure("postgres_connection_sample", json.dumps(rows[:3]))
    assert rows, "no application connection to Postgres to inspect (the engine is not connected)"
    plaintext = [row for row in rows if row[2] != "t" or row[3] != "TLSv1.3"]
    assert not plaintext, f"connections without TLS 1.3: {plaintext}"
    anonymous = [row for row in rows if "CN=engine" not in row[4]]
    assert not anonymous, f"connections without the engine's client certificate: {anonymous}"


@then(
    "from dev's engine-api pod Postgres accepts the engine's certificate and refuses plaintext, "
    "no certificate and production's certificate"
)
def _(
    kube: Kube,
    environment_pair: tuple[Environment, Environment],
    record_figure: RecordFigure,
) -> None:
    dev, production = environment_pair
    stored = kube.core.read_namespaced_secret("engine-tls", production.namespace).data
    foreign = {
        "crt": base64.b64decode(stored["client.crt"]).decode(),
        "key": base64.b64decode(stored["client.key"]).decode(),
    }
    code, output = kube.exec(
        dev.namespace,
        engine_pod(kube, dev),
        ["/usr/bin/python3.11", "-c", ATTEMPTS, json.dumps(foreign)],
        timeout=60,
    )
    assert code == 0, f"the connection attempts did not run: {output[-500:]}"
    results: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    for label, result in results.items():
        record_figure(f"postgres_{label.replace(' ', '_')}", json.dumps(result))
    control = results["engine certificate"]
    assert control["ok"] and control["ssl"] and control["version"] == "TLSv1.3", control
    accepted = [label for label, r in results.items() if label != "engine certificate" and r["ok"]]
    assert not accepted, f"Postgres accepted: {accepted}"


@then("the engine API answers only over TLS, with a certificate of its own environment's CA")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    url = f"{environment.api_url}/healthz"
    verified = http(kube, *environment.client, "GET", url)
    assert verified.status == 200, f"control: HTTPS verified with the environment's CA: {verified}"
    plain = http(
        kube,
        *environment.client,
        "GET",
        url.replace("https://", "http://"),
    )
    record_figure("plaintext_http_result", plain.error[:120] or str(plain.status))
    assert plain.status == 0, f"engine-api answered plaintext HTTP: {plain}"
    stranger = certificates.issue_ca("not this environment's CA")
    write = f"open('/tmp/stranger-ca.crt', 'w').write({stranger.cert_pem!r})"
    code, output = kube.exec(
        environment.client_namespace, environment.client_pod, ["python3", "-c", write]
    )
    assert code == 0, output
    foreign = http(
        kube,
        *environment.client,
        "GET",
        url,
        curl_args=("--cacert", "/tmp/stranger-ca.crt"),
    )
    assert foreign.status == 0 and "exit 60" in foreign.error, (
        f"a client trusting another CA accepted engine-api's certificate: {foreign}"
    )


@then("a packet capture on the engine-api's node holds a plaintext marker but not a TLS one")
def _(
    kube: Kube,
    environment: Environment,
    namespace: str,
    toolbox_image: str,
    record_figure: RecordFigure,
) -> None:
    target = serving_pods(kube, environment, "engine-api")[0]
    secret_marker, clear_marker = f"tls-{uuid.uuid4().hex}", f"clear-{uuid.uuid4().hex}"
    env = {"MARKERS": json.dumps([secret_marker, clear_marker]), "DURATION": "25"}
    name = f"capture-{uuid.uuid4().hex[:6]}"
    kube.create(namespace, workloads.capture_pod(name, target.spec.node_name, toolbox_image, env))
    wait_until(
        lambda: "capturing" in kube.logs(namespace, name),
        timeout=60,
        interval=0.5,
        describe="the capture to start",
    )
    api = f"https://{target.status.pod_ip}:8080"
    sent = api_call(
        kube,
        environment,
        "POST",
        "/v1/sessions",
        environment.token("writer"),
        {"title": secret_marker},
    )
    assert sent.status == 201, f"the TLS write was refused: {sent}"
    # Control: the same bytes path to the same pod, without TLS: the capture must see it.
    http(
        kube,
        *environment.client,
        "GET",
        f"{api.replace('https://', 'http://')}/healthz?probe={clear_marker}",
    )
    summary = kube.summary_of(namespace, name, timeout=90)
    record_figure("capture_frames", summary["frames"])
    record_figure("capture_frames_with_plaintext_marker", summary["seen"][clear_marker])
    record_figure("capture_frames_with_tls_marker", summary["seen"][secret_marker])
    assert summary["seen"][clear_marker] > 0, f"the capture missed the plaintext control: {summary}"
    assert summary["seen"][secret_marker] == 0, (
        f"the TLS request crossed the wire in clear: {summary}"
    )


@then("engine-api's metrics report when each of its certificates expires, as issued")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    exposed = api_call(kube, environment, "GET", "/metrics")
    assert exposed.status == 200, exposed
    gauges = {
        line.split('certificate="', 1)[1].split('"', 1)[0]: float(line.split()[-1])
        for line in str(exposed.body).splitlines()
        if line.startswith("engine_tls_certificate_expiry_timestamp_seconds{")
    }
    stored = kube.core.read_namespaced_secret("engine-tls", environment.namespace).data
    issued = {
        label: time.time() + certificates.seconds_left(base64.b64decode(stored[key]).decode())
        for label, key in (
            ("server", "api.crt"),
            ("database-client", "client.crt"),
            ("ca", "ca.crt"),
        )
    }
    record_figure(
        "certificate_days_left",
        json.dumps(
            {label: round((at - time.time()) / 86400, 1) for label, at in gauges.items()},
            sort_keys=True,
        ),
    )
    assert set(gauges) == set(issued), (
        f"expiry gauges {sorted(gauges)}, certificates {sorted(issued)}"
    )
    off = {
        label: gauges[label] - at for label, at in issued.items() if abs(gauges[label] - at) > 60
    }
    assert not off, f"gauges disagree with the issued certificates by (s): {off}"


# The certificate a TLS server presents, read from inside the cluster. Postgres first
# answers an SSLRequest packet ("S"), then speaks TLS like any server.
PRESENTED = """
import socket, ssl, struct, sys
host, port, postgres = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "postgres"
raw = socket.create_connection((host, port), timeout=5)
if postgres:
    raw.sendall(struct.pack("!ii", 8, 80877103))
    assert raw.recv(1) == b"S", "Postgres refused TLS"
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
with context.wrap_socket(raw, server_hostname=host) as tls:
    print(ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)))
"""


def presented_certificate(
    kube: Kube, namespace: str, pod: str, python: str, host: str, port: int, kind: str
) -> str:
    code, output = kube.exec(namespace, pod, [python, "-c", PRESENTED, host, str(port), kind])
    assert code == 0, f"could not read the certificate {host}:{port} presents: {output[-300:]}"
    return output.strip()


def same_certificate(first: str, second: str) -> bool:
    return bool(
        x509.load_pem_x509_certificate(first.encode())
        == x509.load_pem_x509_certificate(second.encode())
    )


@when("the environment's certificates are issued again", target_fixture="rollouts")
def _(
    environments: Environments, environment: Environment, record_figure: RecordFigure
) -> list[Rollout]:
    started = time.time()
    rotation = deploy_action.rotate_certificates(environments.target, environment.name)
    record_figure("cert_rotation_engine_rolled_s", round(rotation.seconds_to_roll_engine, 1))
    record_figure(
        "cert_rotation_postgres_reloaded_s", round(rotation.seconds_to_reload_postgres, 1)
    )
    return [Rollout(environment.images, started, time.time())]


@then("engine-api and Postgres present the certificates just issued")
def _(kube: Kube, environment: Environment) -> None:
    stored = kube.core.read_namespaced_secret("engine-tls", environment.namespace).data
    issued = {k: base64.b64decode(stored[k]).decode() for k in ("api.crt", "postgres.crt")}
    api_host = f"engine-api.{environment.namespace}.svc.cluster.local"
    served = presented_certificate(kube, *environment.client, "python3", api_host, 8080, "https")
    assert same_certificate(served, issued["api.crt"]), (
        "engine-api still presents its old certificate"
    )
    db_host = f"engine-postgres.{environment.namespace}.svc.cluster.local"
    served = presented_certificate(
        kube,
        environment.namespace,
        engine_pod(kube, environment),
        "/usr/bin/python3.11",
        db_host,
        5432,
        "postgres",
    )
    assert same_certificate(served, issued["postgres.crt"]), (
        "Postgres still presents its old certificate"
    )
