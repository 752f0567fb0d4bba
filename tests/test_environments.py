"""Environment handling: bad names are refused; staging and production differ only where allowed."""

from pathlib import Path

import pytest

from deployer.actions import deploy
from deployer.errors import CommandError, ConfigError
from deployer.settings import default_paths
from steps.common.environment_steps import RateBracket, separated
from steps.support.differences import differences, load_allowed
from steps.support.environments import releases_needed, scenario_steps
from steps.support.releases import BAD_RELEASES

ALLOWED = default_paths().repo / "infra" / "environments" / "allowed-differences.yaml"


@pytest.mark.parametrize("name", ["prod", "Production", "", "dev; rm -rf /", "qa"])
def test_unknown_environments_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown environment"):
        deploy.check_environment(name)


def objects(replicas: int, image: str, namespace: str) -> list[dict[str, object]]:
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": "engine-api", "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [{"image": image}]}},
            },
        }
    ]


def test_allowed_differences_are_ignored() -> None:
    allowed = load_allowed(ALLOWED)
    staging, production = objects(2, "a", "ce-staging"), objects(3, "a", "ce-production")
    assert differences(staging, production, allowed) == []


def test_any_other_difference_is_reported() -> None:
    allowed = load_allowed(ALLOWED)
    found = differences(objects(2, "a", "ce-staging"), objects(2, "b", "ce-production"), allowed)
    assert found == ["Deployment/engine-api:spec.template.spec.containers.0.image: 'a' != 'b'"]


def test_an_object_missing_on_one_side_is_reported(tmp_path: Path) -> None:
    found = differences(objects(2, "a", "x"), [], [])
    assert found == ["Deployment/engine-api: only in one environment"]


def test_a_statefulset_with_changed_immutable_fields_is_recreated_keeping_its_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[object], **_: object) -> str:
        argv = [str(part) for part in command]
        calls.append(argv)
        if "apply" in argv and sum("apply" in c for c in calls) == 1:
            raise CommandError(
                argv,
                "exited with status 1",
                'The StatefulSet "engine-postgres" is invalid: spec: Forbidden: '
                "updates to statefulset spec for fields other than 'replicas' are forbidden",
            )
        return ""

    monkeypatch.setattr(deploy.proc, "run", fake_run)
    target = deploy.Target(kubeconfig=Path("kubeconfig"), kubectl=Path("kubectl"))
    statefulset = {
        "kind": "StatefulSet",
        "metadata": {"name": "engine-postgres", "namespace": "ce-dev"},
    }
    deploy.apply(target, [statefulset])
    verbs = [next(v for v in ("apply", "delete") if v in c) for c in calls]
    assert verbs == ["apply", "delete", "apply"]
    assert "--cascade=orphan" in calls[1] and "engine-postgres" in calls[1]


def test_other_apply_failures_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(command: list[object], **_: object) -> str:
        raise CommandError([str(c) for c in command], "exited with status 1", "denied")

    monkeypatch.setattr(deploy.proc, "run", fake_run)
    target = deploy.Target(kubeconfig=Path("kubeconfig"), kubectl=Path("kubectl"))
    with pytest.raises(CommandError, match="denied"):
        deploy.apply(target, [{"kind": "Service", "metadata": {"name": "x"}}])


def test_the_releases_built_ahead_are_those_the_selected_scenarios_roll_out() -> None:
    steps_of = scenario_steps(default_paths().repo / "features")
    rollback = next(title for title in steps_of if "rolled back automatically" in title)
    migrating = next(title for title in steps_of if "migrates the database" in title)
    assert releases_needed(steps_of, [rollback]) == (False, list(BAD_RELEASES))
    assert releases_needed(steps_of, [migrating]) == (True, [])
    assert releases_needed(steps_of, ["Each environment has its own data"]) == (False, [])


def test_the_latency_rate_closes_in_on_the_band_between_dev_and_production() -> None:
    bracket = RateBracket()
    assert bracket.move(78.1, "up") == pytest.approx(78.1 * 1.3)
    assert bracket.move(101.5, "up") == pytest.approx(101.5 * 1.3)
    middle = bracket.move(132.0, "down")  # the run that failed moved to 105.6 here
    assert middle is not None and 101.5 < middle < 132.0
    assert bracket.move(middle, "up") == pytest.approx((middle * 132.0) ** 0.5)
    lowered = RateBracket()
    assert lowered.move(64.8, "down") == pytest.approx(64.8 * 0.8)


def test_no_rate_is_left_when_dev_carries_what_production_does_not() -> None:
    bracket = RateBracket()
    bracket.move(100.0, "down")
    assert bracket.move(120.0, "up") is None


def test_under_a_ceiling_the_rate_rises_halfway_to_it_and_stops_short_of_it() -> None:
    # The CI run that failed: dev 33.8 and production 81.4 requests/s flat out.
    ceiling = 0.85 * 81.4
    bracket = RateBracket(missed_by_production=ceiling)
    raised = bracket.move(57.6, "up")
    assert raised == pytest.approx((57.6 * ceiling) ** 0.5) and raised < ceiling
    assert bracket.move(0.96 * ceiling, "up") is None  # dev keeps up within 5 % of it


def test_one_noisy_trial_does_not_move_the_rate_most_trials_do() -> None:
    bracket = RateBracket()
    assert bracket.settle(115.4, ["up"]) == ("", None)  # the CI run moved here, and 4 more
    assert bracket.settle(115.4, ["up", ""]) == ("", None)
    assert bracket.settle(115.4, ["up", "", ""]) == ("", None)  # the median trial separates
    move, rate = bracket.settle(115.4, ["up", "up"])
    assert move == "up" and rate == pytest.approx(115.4 * 1.3)
    move, rate = bracket.settle(150.0, ["", "down", "down"])
    assert move == "down" and rate == pytest.approx((115.4 * 150.0) ** 0.5)


def test_dev_keeping_up_once_and_production_falling_behind_once_leaves_no_rate() -> None:
    bracket = RateBracket()
    assert bracket.settle(129.4, ["up", "down"]) == ("", None)  # no rate between: judged here
    assert bracket.settle(129.4, ["up", "down", ""]) == ("", None)


def test_the_comparison_is_made_again_unless_most_trials_separate_the_two() -> None:
    assert not separated(["up", "up", "up"])  # the control: production configured like dev
    assert not separated(["down", "", "down"])
    assert not separated(["", "down", "up"])  # a full run passed on this at 0.49 x
    assert separated(["", "", "up"])
