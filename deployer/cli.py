"""Command line: parse, call one action, print the outcome or one clear error line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.logging import RichHandler

from deployer.actions import (
    capacity,
    cluster,
    cluster_security,
    deploy,
    evidence,
    monitoring,
    pipeline,
    registry,
    release,
    top,
)
from deployer.actions.build import build_all
from deployer.actions.engine import ensure_engine
from deployer.actions.engine_images import build_engine_images, image_refs
from deployer.errors import ConfigError, DeployerError, PrerequisiteError
from deployer.lower import audit_chain, signing
from deployer.lower.kube import api_client
from deployer.lower.prometheus import Prometheus
from deployer.settings import Paths, default_paths

log = logging.getLogger("deployer")


def configure_logging(paths: Paths, verbose: bool) -> Path:
    """Progress at INFO to the terminal; everything (subprocess output too) to a log file."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_file = paths.logs / f"deployer-{time.strftime('%Y%m%dT%H%M%S')}.log"
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console: logging.Handler
    if sys.stderr.isatty():
        console = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    else:  # CI logs: one plain line per message, never wrapped (a path split in two is useless)
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [console, to_file]
    for noisy in ("urllib3", "docker", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m deployer", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="show subprocess output")
    commands = top.add_subparsers(dest="command", required=True)

    commands.add_parser("engine", help="start or check the Docker engine (privileged-capable)")
    commands.add_parser("build", help="build kind, Kubernetes and every image (cached)")
    commands.add_parser("images", help="build the engine's images (engine-api, -worker, Postgres)")

    deploy_cmd = commands.add_parser("deploy", help="deploy the engine to one environment")
    deploy_cmd.add_argument("--env", required=True, help="dev, staging or production")
    deploy_cmd.add_argument("--cluster", default="ce", help="kind cluster made by `cluster up`")
    deploy_cmd.add_argument(
        "--kubeconfig", type=Path, help="a cluster this deployer did not create (needs --registry)"
    )
    deploy_cmd.add_argument("--context", help="the kubeconfig's context (default: current)")
    deploy_cmd.add_argument(
        "--registry", help="push the images here and have the cluster pull them (e.g. ECR)"
    )
    registry_cmd = commands.add_parser(
        "registry", help="a local registry (CNCF Distribution) on 127.0.0.1:5001"
    )
    registry_verbs = registry_cmd.add_subparsers(dest="verb", required=True)
    registry_verbs.add_parser("up", help="build and start it (idempotent)")
    registry_verbs.add_parser("down", help="stop and remove it (its storage is kept)")

    certs_cmd = commands.add_parser(
        "rotate-certs", help="issue an environment's certificates again and roll them in"
    )
    certs_cmd.add_argument("--env", required=True, help="dev, staging or production")
    certs_cmd.add_argument("--cluster", default="ce", help="kind cluster made by `cluster up`")

    commands.add_parser("render-monitoring", help="print the monitoring plane's manifests (YAML)")
    render_cmd = commands.add_parser("render", help="print an environment's manifests (YAML)")
    render_cmd.add_argument("--env", required=True, help="dev, staging or production")

    audit_cmd = commands.add_parser("audit", help="the engine's hash-chained audit trail")
    audit_verbs = audit_cmd.add_subparsers(dest="verb", required=True)
    audit_verbs.add_parser(
        "verify", help="check that no audit event was altered, removed or reordered"
    ).add_argument("log", help="engine-api log file (kubectl logs ... > file), or - for stdin")

    aws_cmd = commands.add_parser(
        "aws-check", help="check the AWS footprint's compliance (boto3; R4.x), exit 1 on a failure"
    )
    aws_cmd.add_argument("--region", required=True)
    aws_cmd.add_argument("--endpoint-url", help="an AWS emulator (e.g. moto's server) instead")
    aws_cmd.add_argument(
        "--check", action="append", default=[], help="only this check (repeatable)"
    )

    evidence_cmd = commands.add_parser(
        "evidence", help="seal a report folder for a release approval, or verify one"
    )
    evidence_verbs = evidence_cmd.add_subparsers(dest="verb", required=True)
    seal_cmd = evidence_verbs.add_parser(
        "seal", help="write its manifest (SHA-256 of every file) and signature, then archive it"
    )
    seal_cmd.add_argument("report", type=Path, help="a report folder, e.g. reports/latest")
    verify_cmd = evidence_verbs.add_parser(
        "verify", help="check the signature and every file; name what was altered, added, removed"
    )
    verify_cmd.add_argument("bundle", type=Path, help="a sealed report folder or its archive")
    verify_cmd.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="the signer's public key (default: this machine's signing key's public part)",
    )

    monitoring_cmd = commands.add_parser(
        "monitoring", help="(re)apply the monitoring plane (infra/monitoring) to a cluster"
    )
    monitoring_cmd.add_argument("--cluster", default="ce")
    promtool_cmd = commands.add_parser(
        "promtool", help="run promtool (built from the pinned Prometheus module, cached)"
    )
    promtool_cmd.add_argument("arguments", nargs=argparse.REMAINDER)
    top_cmd = commands.add_parser("top", help="live view of one environment, from Prometheus")
    top_cmd.add_argument("--env", required=True)
    top_cmd.add_argument("--cluster", default="ce")
    top_cmd.add_argument("--once", action="store_true", help="print one snapshot and exit")
    capacity_cmd = commands.add_parser(
        "capacity-report", help="CSV and plot of the capacity aggregates Prometheus keeps"
    )
    capacity_cmd.add_argument("--cluster", default="ce")
    capacity_cmd.add_argument("--hours", type=float, default=24 * 30)
    capacity_cmd.add_argument("--out", type=Path, default=Path("capacity-report"))
    add_pipeline_commands(commands)
    cluster_cmd = commands.add_parser("cluster", help="ephemeral kind cluster lifecycle")
    verbs = cluster_cmd.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="create a cluster (1 control plane + N workers)")
    up.add_argument("--name", default="ce")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--api-port", type=int, default=0, help="127.0.0.1 port for the API server")
    up.add_argument(
        "--keep-on-failure", action="store_true", help="leave a half-created cluster for inspection"
    )
    up.add_argument(
        "--with-engine",
        action="store_true",
        help="build the engine's images meanwhile and put them on the workers (a faster deploy)",
    )
    for verb in ("down", "status"):
        verbs.add_parser(verb).add_argument("--name", default="ce")
    verbs.add_parser(
        "rotate-key", help="rotate the key that encrypts Secrets in etcd and re-encrypt them all"
    ).add_argument("--name", default="ce")
    return top


def add_pipeline_commands(commands: Any) -> None:
    """``pipeline …`` (the delivery pipeline's remote, runner and stages) and ``promote``."""
    promote_cmd = commands.add_parser(
        "promote", help="deploy the release staging validated to production (one command)"
    )
    promote_cmd.add_argument("--to", required=True, help="target environment (production)")
    promote_cmd.add_argument("--from", dest="source", default="staging")
    promote_cmd.add_argument("--revision", help="a validated release (default: what --from runs)")
    promote_cmd.add_argument("--cluster", default="ce")
    promote_cmd.add_argument(
        "--require-evidence",
        type=Path,
        metavar="BUNDLE",
        help="promote only if this sealed acceptance run passed and ran this release's digests",
    )
    promote_cmd.add_argument(
        "--public-key",
        type=Path,
        help="key the bundle must be signed with (default: this machine's)",
    )
    commands.add_parser("actionlint", help="lint .github/workflows with actionlint (built here)")

    pipe = commands.add_parser("pipeline", help="the delivery pipeline (git remote + act)")
    verbs = pipe.add_subparsers(dest="verb", required=True)
    remote = verbs.add_parser("remote", help="create this machine's git remote whose pushes run CI")
    remote.add_argument(
        "--home", type=Path, default=None, help="folder for remote, runs, workspace"
    )
    remote.add_argument("--source", type=Path, default=Path("."), help="repository to seed it from")
    remote.add_argument("--cluster", default="ce", help="kind cluster the pipeline deploys to")
    trigger = verbs.add_parser("trigger", help="(the remote's hook) queue a run for a pushed ref")
    run = verbs.add_parser("run", help="(the runner) run the workflow for a queued run")
    status = verbs.add_parser("status", help="recent runs: commit, stages, results, times, image")
    for verb in (trigger, run, status):
        verb.add_argument("--home", type=Path, default=None)
    for name in ("before", "after", "ref"):
        trigger.add_argument(f"--{name}", required=True)
    run.add_argument("--id", required=True)
    status.add_argument("--limit", type=int, default=10)
    verbs.add_parser("test", help="(workflow step) the fast tests")
    verbs.add_parser("build", help="(workflow step) this commit's images, SBOM, IDs")
    for verb in ("deploy", "validate"):
        step = verbs.add_parser(verb, help=f"(workflow step) {verb} this commit's release")
        step.add_argument("--env", required=True)
        step.add_argument("--cluster", default="ce")


def deploy_target(paths: Paths, args: argparse.Namespace) -> deploy.Target:
    """The kind cluster made here (images loaded), or --kubeconfig's (images pushed)."""
    if args.kubeconfig is None:
        target = target_for(paths, args.cluster)
        return dataclasses.replace(target, registry=args.registry)
    if not args.registry:
        raise ConfigError(
            "--kubeconfig needs --registry: a cluster this deployer did not create pulls the "
            "engine's images from a registry (start one here with `python -m deployer "
            "registry up`)"
        )
    return cluster.pulling_target(paths, args.kubeconfig, args.context, args.registry)


def target_for(paths: Paths, cluster_name: str) -> deploy.Target:
    handle = cluster.existing(paths, cluster_name)
    return deploy.Target(handle.kubeconfig, handle.kubectl, handle.kind, handle.name)


def run_pipeline(args: argparse.Namespace, paths: Paths) -> int:
    home = getattr(args, "home", None) or paths.pipeline_home
    if args.verb == "remote":
        remote = pipeline.create_remote(paths, home, args.source.resolve(), args.cluster)
        print(remote)
    elif args.verb == "trigger":
        pipeline.trigger(paths, home, args.before, args.after, args.ref)
    elif args.verb == "run":
        return pipeline.run(paths, home, args.id)
    elif args.verb == "status":
        for line in pipeline.format_status(pipeline.runs(home, args.limit)):
            print(line)
    elif args.verb == "test":
        pipeline.stage_test(paths)
    elif args.verb == "build":
        images = release.stage_build(paths)
        print(images.api)
    else:
        deploy.check_environment(args.env)
        target = target_for(paths, args.cluster)
        if args.verb == "deploy":
            release.stage_deploy(paths, args.env, target)
        else:
            release.stage_validate(paths, args.env, target)
    return 0


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM (CI, systemd) takes the same clean-up path as Ctrl-C."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    paths = default_paths()
    log_file = configure_logging(paths, args.verbose)
    try:
        return dispatch(args, paths)
    except DeployerError as error:
        log.error("%s", error)
        log.error("full log: %s", log_file)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def verify_audit_log(source: str) -> int:
    """Exit 0 when every chain verifies, 1 when one is broken (and say where)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read {source}: {error.strerror}") from None
    report = audit_chain.verify(audit_chain.audit_events(text.splitlines()))
    for chain, count in sorted(report.chains.items()):
        print(f"chain {chain}: {count} events")
    for problem in report.problems:
        print(f"BROKEN: {problem}")
    if not report.chains:
        raise ConfigError(f"no audit events in {source}")
    print("audit trail intact" if report.intact else "audit trail TAMPERED")
    return 0 if report.intact else 1


def aws_findings(args: argparse.Namespace) -> list[Any]:
    """boto3 is optional (requirements/cloud.txt): only this command needs it."""
    try:
        from deployer.actions import cloud_checks  # noqa: PLC0415 - the optional AWS SDK
    except ImportError as missing:
        raise PrerequisiteError(
            f"{missing.name} is not installed: pip install -r requirements/cloud.txt"
        ) from None
    unknown = sorted(set(args.check) - {c.name for c in cloud_checks.CHECKS})
    if unknown:
        names = ", ".join(c.name for c in cloud_checks.CHECKS)
        raise ConfigError(f"no check named {', '.join(unknown)}; the checks are: {names}")
    return cloud_checks.run_checks(args.region, args.endpoint_url, tuple(args.check))


def trusted_key(args: argparse.Namespace) -> tuple[Any, str]:
    """--public-key, or the public part of this machine's signing key; and where it came from."""
    if args.public_key:
        return signing.load_public(args.public_key), str(args.public_key)
    return signing.local_public_key()


def run_evidence(args: argparse.Namespace) -> int:
    """seal: 0 when written. verify: 0 intact, 1 tampered (each file named), 2 unusable input."""
    if args.verb == "seal":
        key = signing.load_or_create()
        if key.created:
            log.info(
                "made a new signing key %s; publish its public part: %s",
                key.source,
                signing.public_file(Path(key.source)),
            )
        sealed = evidence.seal(args.report.resolve(), key, {"sealed_by": "deployer evidence seal"})
        print(sealed.archive)
        return 0
    public, source = trusted_key(args)
    verdict = evidence.verify(args.bundle, public)
    print(
        f"signed by {verdict.signer}: signature {'valid' if verdict.signature_valid else 'INVALID'}"
        f" for {source}"
    )
    for label, names in (
        ("ALTERED", verdict.altered),
        ("ADDED", verdict.added),
        ("REMOVED", verdict.removed),
    ):
        for name in names:
            print(f"{label}: {name}")
    print("evidence intact" if verdict.intact else "evidence TAMPERED")
    return 0 if verdict.intact else 1


def dispatch(args: argparse.Namespace, paths: Paths) -> int:
    if args.command == "engine":
        ensure_engine(paths)
    elif args.command == "build":
        report = build_all(paths, ensure_engine(paths))
        print(report.node_image)
        for stage, seconds in report.stages.items():
            log.info("   %-20s %6.1fs", stage, seconds)
    elif args.command == "images":
        images = build_engine_images(paths, ensure_engine(paths))
        for ref in (images.api, images.worker, images.postgres):
            print(f"{ref} {images.image_bytes[ref] / 1e6:.1f} MB")
    elif args.command == "render":
        _, kubectl = cluster.built_tools(paths)
        documents = deploy.render(paths, kubectl, args.env, image_refs(paths))
        print(yaml.safe_dump_all(documents, sort_keys=False))
    elif args.command == "render-monitoring":
        _, kubectl = cluster.built_tools(paths)
        print(monitoring.render(paths, kubectl))
    elif args.command == "deploy":
        deploy.check_environment(args.env)
        deploy.deploy(paths, args.env, deploy_target(paths, args))
    elif args.command == "registry":
        docker = ensure_engine(paths)
        if args.verb == "up":
            print(registry.up(paths, docker))
        elif not registry.down(docker):
            log.info("no local registry was running")
    elif args.command == "pipeline":
        return run_pipeline(args, paths)
    elif args.command == "promote":
        gate = (args.require_evidence, trusted_key(args)[0]) if args.require_evidence else None
        promotion = release.promote(
            paths,
            target_for(paths, args.cluster),
            args.to,
            args.source,
            args.revision,
            evidence_gate=gate,
        )
        print(
            f"{promotion.target} runs {promotion.revision} (from {promotion.source}), "
            f"promoted by {promotion.who} in {promotion.seconds:.0f}s"
        )
    elif args.command == "actionlint":
        return pipeline.actionlint(paths)
    elif args.command == "rotate-certs":
        deploy.check_environment(args.env)
        target = target_for(paths, args.cluster)
        certificates_rolled = deploy.rotate_certificates(target, args.env)
        log.info(
            "engine rolled in %.0fs; Postgres reloaded after %.0fs",
            certificates_rolled.seconds_to_roll_engine,
            certificates_rolled.seconds_to_reload_postgres,
        )
    elif args.command == "monitoring":
        handle = cluster.existing(paths, args.cluster)
        monitoring.apply(paths, handle.kubeconfig, handle.kubectl)
    elif args.command == "promtool":
        return monitoring.promtool(paths, args.arguments)
    elif args.command == "top":
        handle = cluster.existing(paths, args.cluster)
        top.run(Prometheus(api_client(handle.kubeconfig)), args.env, args.once, Console())
    elif args.command == "capacity-report":
        handle = cluster.existing(paths, args.cluster)
        written = capacity.write_report(
            Prometheus(api_client(handle.kubeconfig)), args.out, args.hours
        )
        print(written.csv_path)
        print(written.plot_path)
    elif args.command == "audit":
        return verify_audit_log(args.log)
    elif args.command == "evidence":
        return run_evidence(args)
    elif args.command == "aws-check":
        findings = aws_findings(args)
        for f in findings:
            verdict = "PASS" if f.compliant else "FAIL"
            print(f"{verdict} {f.requirement} {f.check:17} {f.resource}: {f.detail}")
        failed = sum(1 for f in findings if not f.compliant)
        print(f"{len(findings)} resources checked, {failed} not compliant")
        return 1 if failed else 0
    elif args.command == "cluster":
        if args.verb == "up":
            request = cluster.ClusterRequest(
                name=args.name,
                workers=args.workers,
                api_port=args.api_port,
                keep_on_failure=args.keep_on_failure,
                with_engine=args.with_engine,
            )
            handle = cluster.up(paths, request)
            print(handle.kubeconfig)
        elif args.verb == "down":
            if cluster.down(paths, args.name):
                log.info("cluster %r deleted", args.name)
            else:
                log.info("no cluster named %r", args.name)
        elif args.verb == "rotate-key":
            handle = cluster.existing(paths, args.name)
            rotation = cluster_security.rotate(
                api_client(handle.kubeconfig), cluster.cluster_dir(paths, args.name)
            )
            log.info(
                "Secrets now encrypted with %s (was %s): %d rewritten; new key used after "
                "%.0fs, old keys dropped after %.0fs",
                rotation.new_key,
                ", ".join(rotation.old_keys),
                rotation.secrets_rewritten,
                rotation.seconds_to_new_key,
                rotation.seconds_to_drop_old,
            )
        else:
            for line in cluster.status(paths, args.name):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
