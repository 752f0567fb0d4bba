Feature: R5 - Isolated dev, staging and production (product owner)
  Develop, test and run production in isolation.

  @R5.1 @environments @security
  Scenario: Development is isolated from production
    Given the "dev" and "production" environments are deployed
    Then a pod with dev's engine-api identity reaches dev's database but nothing of production
    And a pod with dev's engine-worker identity reaches dev's database but nothing of production
    And dev's client namespace reaches dev's API but not production's
    And dev's service account cannot read production's secrets

  @R5.2 @environments
  Scenario: Staging is identical to production
    Given the "staging" and "production" environments are deployed
    Then staging and production differ only in the allowed fields, rendered and live

  @R5.3 @environments @performance @quiet @alone
  Scenario: Production is tuned for performance
    Given the "dev" and "production" environments are deployed
    When the same bounded load is sent to both at the same moment from inside the cluster
    Then production serves at least 1.25 x dev's requests per second, at under half its p99 latency

  @R5.4 @environments @light
  Scenario: Configuration follows the environment automatically
    Given the "dev" and "production" environments are deployed
    Then each running engine-api reports its own environment's configuration

  @R5.5 @environments @security
  Scenario: Each environment has its own data
    Given the "staging" and "production" environments are deployed
    When a session is written in staging
    Then it is not visible in production
    And neither environment's engine can open the other's database, while each opens its own
