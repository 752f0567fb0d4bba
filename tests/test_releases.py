"""The bad releases R2.5 ships: each still applies to the engine's code."""

from pathlib import Path

import pytest

from steps.support import releases

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("release", releases.BAD_RELEASES.values(), ids=lambda r: r.slug)
def test_each_bad_release_changes_exactly_one_place_of_the_engine(
    release: releases.BadRelease,
) -> None:
    assert (REPO / release.path).read_text().count(release.old) == 1
