Feature: R2 - Automated CI/CD pipeline (DevOps engineer)
  Ship fast and safely: tests on push, image build, staging, one-click
  production, automatic rollback.

  @R2.1 @delivery @not_implemented
  Scenario: A push to main runs the automated tests
    Given a clone of the repository with a new commit on main
    When the commit is pushed
    Then the pipeline runs the fast test suite and records its result

  @R2.2 @delivery @not_implemented
  Scenario: Passing tests produce a Docker image
    Given the pipeline's tests passed for a commit
    Then an engine-api image tagged with that commit exists

  @R2.3 @delivery @not_implemented
  Scenario: A ready image is deployed to staging automatically
    Given an engine-api image built by the pipeline
    Then staging runs that image without a manual step

  @R2.4 @delivery @not_implemented
  Scenario: A validated staging release reaches production in one command
    Given staging runs a validated release
    When the operator runs the promote command once
    Then production runs the same image digest as staging

  @R2.5 @delivery @resilience @not_implemented
  Scenario: A failing deployment is rolled back automatically
    Given the "staging" environment is deployed
    When a release whose pods never become Ready is deployed
    Then the deployer rolls back to the previous release
    And the engine API kept answering throughout
