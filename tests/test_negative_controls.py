"""The negative controls stay applicable to this checkout, and their verdicts are honest."""

from pathlib import Path

import pytest

from controls.run import ROOT, Control, consume, load, verdict


@pytest.mark.parametrize("control", load(), ids=lambda c: c.name)
def test_every_control_still_finds_what_it_takes_away(control: Control) -> None:
    for file, old, new in control.edits:
        assert old in (ROOT / file).read_text(), f"{file} no longer holds {old!r}"
        assert old != new


def junit(tmp_path: Path, *cases: str) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text(f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>")
    return path


def test_a_failed_scenario_is_a_detection(tmp_path: Path) -> None:
    report = junit(tmp_path, '<testcase name="a"><failure message="x"/></testcase>')
    assert verdict(report) == ("detected", ["a"])


def test_a_passing_scenario_is_a_miss(tmp_path: Path) -> None:
    assert verdict(junit(tmp_path, '<testcase name="a"/>'))[0] == "MISSED"


def test_a_setup_error_or_nothing_run_proves_nothing(tmp_path: Path) -> None:
    assert verdict(junit(tmp_path, '<testcase name="a"><error message="x"/></testcase>'))[0] == (
        "broken"
    )
    assert verdict(junit(tmp_path, '<testcase name="a"><skipped/></testcase>'))[0] == "broken"
    assert verdict(tmp_path / "missing.xml")[0] == "broken"


def test_a_failure_in_the_setup_proves_nothing_and_each_failure_names_its_step(
    tmp_path: Path,
) -> None:
    def case(name: str, step: str) -> str:
        return (
            f'<testcase name="{name}"><properties><property name="failed_step" value="{step}"/>'
            '</properties><failure message="x"/></testcase>'
        )

    given = junit(tmp_path, case("a", "given the &quot;dev&quot; environment is deployed"))
    assert verdict(given) == ("broken", ['a (failed at: given the "dev" environment is deployed)'])
    then = junit(tmp_path, case("a", "then the log store finds it"))
    assert verdict(then) == ("detected", ["a (failed at: then the log store finds it)"])


def test_the_applied_control_leaves_the_scratch_trees_list(tmp_path: Path) -> None:
    listed = tmp_path / "negative.toml"
    listed.write_text(
        '# head\n\n[[control]]\nname = "a"\nold = "x"\n\n[[control]]\nname = "ab"\nold = "y"\n'
    )
    consume(listed, "a")
    assert listed.read_text() == '# head\n\n[[control]]\nname = "ab"\nold = "y"\n'
    with pytest.raises(SystemExit, match="not found once"):
        consume(listed, "a")
