"""Cache keys decide whether a warm run rebuilds: same inputs, same key; any change, new key."""

from pathlib import Path

from deployer.lower.cache import cache_key


def test_same_inputs_give_the_same_key(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    assert cache_key("x", trees=[tmp_path]) == cache_key("x", trees=[tmp_path])


def test_changing_a_file_changes_the_key(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("alpha")
    before = cache_key("x", trees=[tmp_path])
    target.write_text("beta")
    assert cache_key("x", trees=[tmp_path]) != before


def test_changing_a_mode_changes_the_key(tmp_path: Path) -> None:
    target = tmp_path / "entrypoint"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o644)
    before = cache_key(trees=[tmp_path])
    target.chmod(0o755)
    assert cache_key(trees=[tmp_path]) != before


def test_string_parts_are_not_ambiguous() -> None:
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_a_go_toolchain_is_part_of_a_programs_key_only_when_named(tmp_path: Path) -> None:
    """Naming a toolchain rebuilds that program; programs without one keep their keys
    (and their cached builds)."""
    from deployer.lower.gobuild import GoProgram

    (tmp_path / "go.mod").write_text("module example\n")
    local = GoProgram("p", tmp_path, (("p", "."),))
    fetched = GoProgram("p", tmp_path, (("p", "."),), toolchain="go1.27.3")
    assert local.key("go1.26.8") != fetched.key("go1.26.8")
    assert local.key("go1.26.8") == GoProgram("p", tmp_path, (("p", "."),), toolchain="").key(
        "go1.26.8"
    )
