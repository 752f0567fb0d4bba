"""The releases the suite builds from patched engine code (R1.4's next release, R2.5's
bad ones): each change still applies to the engine's code, exactly once."""

from pathlib import Path

import pytest

from steps.common.rollout_steps import covered_seconds
from steps.support import releases

REPO = Path(__file__).resolve().parent.parent
ALL = [*releases.BAD_RELEASES.values(), releases.NEXT_RELEASE]


@pytest.mark.parametrize("release", ALL, ids=lambda r: r.slug)
def test_each_change_of_a_release_finds_its_place_in_the_engine_once(
    release: releases.Release,
) -> None:
    for change in release.changes:
        assert (REPO / change.path).read_text().count(change.old) == 1, change.old


def test_the_next_release_only_expands_the_schema() -> None:
    """Its migration adds a nullable column: the release before it keeps inserting."""
    (schema,) = [c for c in releases.NEXT_RELEASE.changes if c.path == releases.SCHEMA]
    assert releases.EXPAND in schema.new
    assert "NOT NULL" not in releases.EXPAND and "DROP" not in schema.new.upper()


def test_overlapping_rollout_windows_are_counted_once() -> None:
    assert covered_seconds([(0.0, 50.0), (40.0, 90.0), (100.0, 110.0)]) == 100.0
    assert covered_seconds([]) == 0.0
