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

  @R2.5 @delivery @resilience @not_implemented
  Scenario: A failing deployment is rolled back automatically
    Given the "staging" environment is deployed
    When a release whose pods never become Ready is deployed
    Then the deployer rolls back to the previous release
    And the engine API kept answering throughout
