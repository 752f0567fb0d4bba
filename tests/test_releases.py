"""The bad releases R2.5 ships: each still applies to the engine's code, and the suite
knows which to build ahead from the selected scenarios' steps."""

from pathlib import Path

import pytest

from steps.support import releases

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("release", releases.BAD_RELEASES.values(), ids=lambda r: r.slug)
def test_each_bad_release_changes_exactly_one_place_of_the_engine(
    release: releases.BadRelease,
) -> None:
    assert (REPO / release.path).read_text().count(release.old) == 1


def test_the_bad_releases_a_scenario_ships_are_read_from_its_steps() -> None:
    steps_of = {
        "rolled back": "Given bad releases are built and on the nodes: pods never Ready, "
        "crash-looping\nAnd a client",
        "other": 'Given the "dev" environment is deployed',
    }
    assert releases.needed(steps_of, ["other", "rolled back"]) == [
        "pods never Ready",
        "crash-looping",
    ]
    assert releases.needed(steps_of, ["other"]) == []
