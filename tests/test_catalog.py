"""The catalog derives every image tag from the pins in go.mod / versions.toml."""

from deployer.catalog import cluster_images, go_programs, kubernetes_ldflags
from deployer.settings import default_paths, load_versions


def test_kubernetes_version_comes_from_its_go_mod() -> None:
    versions = load_versions(default_paths())
    assert versions.kubernetes.startswith("v1.34.")


def test_images_cover_what_kubeadm_needs() -> None:
    paths = default_paths()
    versions = load_versions(paths)
    refs = {spec.ref for spec in cluster_images(paths, versions)}
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        assert f"registry.k8s.io/{name}:{versions.kubernetes}" in refs
    assert f"registry.k8s.io/pause:{versions.pause_tag}" in refs
    assert any(ref.startswith("registry.k8s.io/etcd:3.6.") for ref in refs)
    assert any(ref.startswith("registry.k8s.io/coredns/coredns:v1.") for ref in refs)


def test_every_image_binary_is_built_by_a_program() -> None:
    paths = default_paths()
    versions = load_versions(paths)
    programs = go_programs(paths, versions)
    for spec in cluster_images(paths, versions):
        for program, binary in spec.binaries:
            assert binary in dict(programs[program].packages), (
                f"{spec.ref} needs {program}/{binary}"
            )


def test_ldflags_stamp_the_version_kubeadm_reads() -> None:
    flags = kubernetes_ldflags("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags
