"""The image scan finds shells, package managers and interpreters wherever they hide."""

from pathlib import Path

from steps.support.image_scan import scan


def touch(root: Path, relative: str, mode: int = 0o755) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    path.chmod(mode)


def test_a_clean_tree_with_its_one_interpreter_allowed_has_no_finding(tmp_path: Path) -> None:
    touch(tmp_path, "usr/bin/python3.11")
    touch(tmp_path, "usr/lib/python3.11/json/__init__.py", 0o644)
    touch(tmp_path, "opt/engine/site-packages/starlette/__init__.py", 0o644)
    assert scan(tmp_path, frozenset({"usr/bin/python3.11"})) == []


def test_what_a_fixed_path_list_misses_is_found(tmp_path: Path) -> None:
    touch(tmp_path, "usr/local/bin/bash")
    touch(tmp_path, "opt/tools/busybox")
    touch(tmp_path, "usr/bin/pip3.11")
    touch(tmp_path, "opt/engine/site-packages/pip/__init__.py", 0o644)
    touch(tmp_path, "usr/lib/python3.11/ensurepip/__init__.py", 0o644)
    touch(tmp_path, "usr/bin/perl5.36.0")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").symlink_to("/usr/local/bin/bash")
    found = {f.path: f.kind for f in scan(tmp_path)}
    assert found == {
        "bin/sh": "shell",
        "opt/engine/site-packages/pip": "package manager",
        "opt/tools/busybox": "shell",
        "usr/bin/perl5.36.0": "interpreter",
        "usr/bin/pip3.11": "package manager",
        "usr/lib/python3.11/ensurepip": "package manager",
        "usr/local/bin/bash": "shell",
    }


def test_a_non_executable_file_named_like_a_shell_is_data(tmp_path: Path) -> None:
    touch(tmp_path, "usr/share/doc/bash", 0o644)
    assert scan(tmp_path) == []
