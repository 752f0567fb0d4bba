"""What the cluster is made of: Go programs, root file systems and images.

Data only; the actions decide when to build. Versions come from the go.mod
of each component folder (Go modules) and infra/versions.toml (the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.lower.gobuild import GoProgram
from deployer.lower.rootfs import RootfsSpec
from deployer.settings import Paths, Versions, go_module_version

NODE_ROOTFS = RootfsSpec(
    name="node",
    packages=(
        "systemd",
        "systemd-sysv",
        "dbus",
        "containerd",
        "runc",
        "containernetworking-plugins",
        "iptables",
        "nftables",
        "ipset",
        "iproute2",
        "ethtool",
        "conntrack",
        "util-linux",
        "mount",
        "kmod",
        "libseccomp2",
        "ca-certificates",
        "procps",
        "jq",
        "socat",
        "iputils-ping",
    ),
)

# One small general-purpose base for node-level helpers (kube-proxy, kube-router,
# the storage helper pod) and for the test suite's probe pods.
TOOLBOX_ROOTFS = RootfsSpec(
    name="toolbox",
    packages=(
        "iptables",
        "ipset",
        "iproute2",
        "conntrack",
        "ca-certificates",
        "curl",
        "netcat-openbsd",
        "python3",
        "procps",
    ),
)

TOOLBOX_IMAGE = "ce.local/toolbox:bookworm"

# The engine's Python runtime comes from Debian's python3; only the interpreter,
# the standard library and shared libraries are copied into the final image.
ENGINE_RUNTIME_ROOTFS = RootfsSpec(name="python", packages=("python3", "ca-certificates"))

# Postgres and its Prometheus exporter (a sidecar in the same pod, reading
# over the pod-local socket, so the server's TLS-only network rules stay).
POSTGRES_ROOTFS = RootfsSpec(
    name="postgres",
    packages=("postgresql-15", "prometheus-postgres-exporter", "ca-certificates"),
)

# The monitoring plane's Debian part: Alertmanager 0.25, the node and Postgres
# exporters, and Python with the Prometheus client library for the Kubernetes
# object-state exporter (kube-state-metrics is not served by this machine's Go
# proxy; Debian's python3-kubernetes does not debootstrap). Prometheus itself
# comes from its Go module (Debian's 2.42 is built without Kubernetes service
# discovery), as do VictoriaLogs and vlagent (see go_programs).
MONITORING_ROOTFS = RootfsSpec(
    name="monitoring",
    packages=(
        "prometheus-alertmanager",
        "prometheus-node-exporter",
        "prometheus-postgres-exporter",
        "python3-prometheus-client",
        "ca-certificates",
    ),
)

MONITORING_IMAGE = "ce.local/monitoring:bookworm"
# What the monitoring plane's processes never run: the package managers, every shell
# (no container of the plane starts one), perl (Debian's essential perl-base), and
# documentation. Python stays: the kube-state exporter and the alert receiver run it.
MONITORING_TRIM = (
    "/usr/bin/apt*",
    "/usr/bin/dpkg*",
    "/usr/bin/debconf*",
    "/usr/sbin/dpkg*",
    "/usr/lib/apt",
    "/usr/lib/dpkg",
    "/usr/lib/x86_64-linux-gnu/libapt-*",
    "/var/lib/apt",
    "/var/lib/dpkg",
    "/var/cache/apt",
    "/var/cache/debconf",
    "/var/lib/debconf",
    "/etc/apt",
    "/usr/share/debconf",
    "/usr/bin/perl*",
    "/usr/lib/x86_64-linux-gnu/perl*",
    "/usr/share/perl*",
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/bug",
    "/etc/cron.*",
    "/etc/logrotate.d",
    "/usr/bin/rbash",
    "/usr/bin/dash",
    "/usr/bin/sh",
    "/usr/bin/bash",
)

ARGO_ROLLOUTS_MODULE = "github.com/argoproj/argo-rollouts"
# The Go release the go command fetches from the module proxy for modules that need
# a newer Go than the machine's (the only newer one this machine's proxy serves).
ARGO_ROLLOUTS_TOOLCHAIN = "go1.27.3"


def kubernetes_ldflags(version: str) -> str:
    """The version stamps kubeadm and the kubelet report (normally set by make)."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(flags)


def prometheus_ldflags(module_version: str) -> str:
    """Prometheus' module v0.3MM.P is release 3.MM.P; stamp it as its Makefile would."""
    minor, patch = module_version.lstrip("v").split(".")[1:3]
    release = f"3.{int(minor) - 300}.{patch}"
    return f"-s -w -X github.com/prometheus/common/version.Version={release}"


def go_programs(paths: Paths, versions: Versions) -> dict[str, GoProgram]:
    c = paths.components
    k8s_commands = (
        "kubeadm",
        "kubelet",
        "kubectl",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    )
    programs = [
        GoProgram("runc-capfilter", c / "runc-capfilter", (("runc-capfilter", "."),)),
        GoProgram("pause", c / "pause", (("pause", "."),)),
        GoProgram("kind", c / "kind", (("kind", "sigs.k8s.io/kind"),)),
        GoProgram(
            "kubernetes",
            c / "kubernetes",
            tuple((name, f"k8s.io/kubernetes/cmd/{name}") for name in k8s_commands),
            ldflags=kubernetes_ldflags(versions.kubernetes),
        ),
        GoProgram(
            "etcd",
            c / "etcd",
            (("etcd", "go.etcd.io/etcd/server/v3"), ("etcdctl", "go.etcd.io/etcd/etcdctl/v3")),
        ),
        GoProgram("cri-tools", c / "cri-tools", (("crictl", "sigs.k8s.io/cri-tools/cmd/crictl"),)),
        GoProgram("coredns", c / "coredns", (("coredns", "github.com/coredns/coredns"),)),
        GoProgram(
            "kube-router",
            c / "kube-router",
            (("kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"),),
        ),
        GoProgram(
            "metrics-server",
            c / "metrics-server",
            (("metrics-server", "sigs.k8s.io/metrics-server/cmd/metrics-server"),),
        ),
        GoProgram(
            "local-path-provisioner",
            c / "local-path-provisioner",
            (("local-path-provisioner", "github.com/rancher/local-path-provisioner"),),
        ),
        GoProgram(
            "prometheus",
            c / "prometheus",
            (
                ("prometheus", "github.com/prometheus/prometheus/cmd/prometheus"),
                ("promtool", "github.com/prometheus/prometheus/cmd/promtool"),
            ),
            ldflags=prometheus_ldflags(
                component_version(paths, "prometheus", "github.com/prometheus/prometheus")
            ),
            # Service discovery for Kubernetes only: a third of the build, no cloud SDKs.
            tags="remove_all_sd,enable_kubernetes_sd",
        ),
        GoProgram(
            "victorialogs",
            c / "victorialogs",
            (
                ("victoria-logs", "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"),
                ("vlagent", "github.com/VictoriaMetrics/VictoriaLogs/app/vlagent"),
            ),
        ),
        # The progressive-delivery controller that rolls a bad engine-api release back
        # (R2.5). Its go.mod needs Go 1.26.10; this machine has 1.26.8.
        GoProgram(
            "argo-rollouts",
            c / "argo-rollouts",
            (
                (
                    "rollouts-controller",
                    "github.com/argoproj/argo-rollouts/cmd/rollouts-controller",
                ),
            ),
            toolchain=ARGO_ROLLOUTS_TOOLCHAIN,
        ),
        # The delivery pipeline: act runs .github/workflows/ here; actionlint checks them.
        GoProgram("act", paths.pipeline_tools / "act", (("act", "github.com/nektos/act"),)),
        GoProgram(
            "actionlint",
            paths.pipeline_tools / "actionlint",
            (("actionlint", "github.com/rhysd/actionlint/cmd/actionlint"),),
        ),
    ]
    return {program.name: program for program in programs}


@dataclass(frozen=True)
class ImageSpec:
    """A runtime image: a base (scratch or a rootfs) plus binaries from Go programs."""

    ref: str
    base: str  # "scratch" or a RootfsSpec name
    binaries: tuple[tuple[str, str], ...]  # (program name, binary name) -> /usr/local/bin
    entrypoint: tuple[str, ...] = ()
    user: str = ""
    # Paths (globs) removed from the base before the binaries are added; the result is
    # flattened into one layer, so what is removed is not shipped.
    trim: tuple[str, ...] = ()


def component_version(paths: Paths, folder: str, module: str) -> str:
    return go_module_version(paths.components / folder / "go.mod", module)


def cluster_images(paths: Paths, versions: Versions) -> list[ImageSpec]:
    """Every image the node image preloads; tags are the ones kubeadm and our manifests ask for."""
    k8s = versions.kubernetes
    etcd = component_version(paths, "etcd", "go.etcd.io/etcd/server/v3").lstrip("v") + "-0"
    coredns = component_version(paths, "coredns", "github.com/coredns/coredns")
    router = component_version(paths, "kube-router", "github.com/cloudnativelabs/kube-router/v2")
    metrics = component_version(paths, "metrics-server", "sigs.k8s.io/metrics-server")
    local_path = component_version(
        paths, "local-path-provisioner", "github.com/rancher/local-path-provisioner"
    )
    control_plane = [
        ImageSpec(f"registry.k8s.io/{name}:{k8s}", "scratch", (("kubernetes", name),))
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    return control_plane + [
        ImageSpec(f"registry.k8s.io/kube-proxy:{k8s}", "toolbox", (("kubernetes", "kube-proxy"),)),
        ImageSpec(
            f"registry.k8s.io/etcd:{etcd}", "scratch", (("etcd", "etcd"), ("etcd", "etcdctl"))
        ),
        ImageSpec(
            f"registry.k8s.io/coredns/coredns:{coredns}",
            "scratch",
            (("coredns", "coredns"),),
            entrypoint=("/usr/local/bin/coredns",),
        ),
        ImageSpec(
            f"registry.k8s.io/pause:{versions.pause_tag}",
            "scratch",
            (("pause", "pause"),),
            entrypoint=("/usr/local/bin/pause",),
        ),
        ImageSpec(f"ce.local/kube-router:{router}", "toolbox", (("kube-router", "kube-router"),)),
        ImageSpec(
            f"ce.local/metrics-server:{metrics}",
            "scratch",
            (("metrics-server", "metrics-server"),),
            user="65534",
        ),
        ImageSpec(
            f"ce.local/local-path-provisioner:{local_path}",
            "scratch",
            (("local-path-provisioner", "local-path-provisioner"),),
        ),
        ImageSpec(TOOLBOX_IMAGE, "toolbox", ()),
        ImageSpec(
            MONITORING_IMAGE,
            "monitoring",
            (
                ("prometheus", "prometheus"),
                ("prometheus", "promtool"),
                ("victorialogs", "victoria-logs"),
                ("victorialogs", "vlagent"),
            ),
            user="65534",
            trim=MONITORING_TRIM,
        ),
        ImageSpec(
            argo_rollouts_image(paths),
            "scratch",
            (("argo-rollouts", "rollouts-controller"),),
            entrypoint=("/usr/local/bin/rollouts-controller",),
            user="999",
        ),
    ]


def argo_rollouts_image(paths: Paths) -> str:
    return (
        f"ce.local/argo-rollouts:{component_version(paths, 'argo-rollouts', ARGO_ROLLOUTS_MODULE)}"
    )
