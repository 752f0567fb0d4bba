Feature: R2 - Automated CI/CD pipeline (DevOps engineer)
  Ship fast and safely: tests on push, image build, staging, one-click
  production, automatic rollback.

  The pipeline is .github/workflows/pipeline.yml, run on this machine by act
  from the post-receive hook of a git remote the deployer creates. Three
  commits are pushed once per run: tests passing on main, on a feature branch,
  and a failing test on main.

  @R2.1 @delivery
  Scenario: A push to main runs the automated tests
    Given the pipeline's git remote on this machine
    When commits are pushed: tests passing on main, on a feature branch, and a failing test on main
    Then the pipeline ran the fast tests for each pushed commit and recorded the result
    And only the passing commit on main went past the tests

  @R2.2 @delivery
  Scenario: Passing tests produce a Docker image
    Given the pipeline's git remote on this machine
    When commits are pushed: tests passing on main, on a feature branch, and a failing test on main
    Then the passing commit on main has engine images tagged with that commit, with image IDs and an SBOM
    And the commits that did not pass or were not on main have no image

  @R2.3 @delivery
  Scenario: A ready image is deployed to staging automatically
    Given the "staging" environment is deployed
    And the pipeline's git remote on this machine
    When commits are pushed: tests passing on main, on a feature branch, and a failing test on main
    Then staging runs exactly the images built for the passing commit, with no manual step
    And staging's engine answers as that commit's release

  @R2.4 @delivery
  Scenario: A validated staging release reaches production in one command
    Given the "staging" environment is deployed
    And the "production" environment is deployed
    And the pipeline's git remote on this machine
    When commits are pushed: tests passing on main, on a feature branch, and a failing test on main
    And the operator runs "python -m deployer promote --to production" once
    Then production runs the same image digests as staging validated
    And the promotion is recorded with who promoted which release and when
    And promoting a release staging never validated is refused and production is unchanged

  @R2.5 @delivery @resilience
  Scenario: A failing release is rolled back automatically, with no human action
    Engine-api's releases go through Argo Rollouts: a canary takes a quarter of
    the pods, its answers are analysed in Prometheus, and a release that makes
    no progress or answers 5xx is aborted. Three real bad releases, each built
    from the engine's code with one bug, are shipped while a client reads.
    Given the "staging" environment is deployed
    And bad releases are built and on the nodes: pods never Ready, crash-looping, 5xx on one route
    And a client pod sending requests to the engine API
    When each bad release is deployed with the deployer
    Then Argo Rollouts rolled every one of them back with no human action
    And the environment serves the previous release again, on every pod
    And users saw no failed request while a release that never served was out, and the errors of the one that did are counted
