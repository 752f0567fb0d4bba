Feature: R3 - Complete monitoring and observability (system administrator)
  Find and fix problems before users do. Everything is asked of the running
  monitoring plane (Prometheus, Alertmanager, VictoriaLogs) deployed beside
  the engine; faults are made for real from outside the product.

  @R3.1 @observability
  Scenario: Every critical metric is collected, for every target, and fresh
    Given the "dev" environment is deployed
    When the engine serves requests and finishes a job
    Then every scrape target is up, each layer of the catalogue among them
    And every critical metric exists for each of its targets and is fresh

  @R3.2 @observability @alone
  Scenario: A healthy stack raises no alert
    Given the "dev" environment is deployed
    And the alert receiver is listening
    Then no alert fires and none reaches the receiver for 30 seconds

  @R3.2 @observability @alone
  Scenario: Real faults raise their alerts within seconds, and each resolves once its fault is gone
    Given the alert receiver is listening
    When these faults are injected, 4 reads a second going to each environment, one phase after the other
      | phase | environment | fault                | alerts                                                             | resolving                          |
      | 1     | dev         | crash-looping worker | KubePodCrashLooping:warning                                        | KubePodCrashLooping:warning        |
      | 1     | staging     | engine-api down      | EngineServiceDown:critical                                         | EngineServiceDown:critical         |
      | 1     | production  | Postgres down        | EngineDatabaseUnreachable:critical                                 | EngineDatabaseUnreachable:critical |
      | 2     | dev         | error burst          | EngineErrorRateHigh:warning, EngineAvailabilityBudgetBurn:critical | EngineErrorRateHigh:warning        |
      | 2     | staging     | latency spike        | EngineHighLatency:warning                                          | EngineHighLatency:warning          |
      | 3     | dev         | node lost            | NodeDown:critical                                                  | NodeDown:critical                  |
    Then every fault raised its alerts and every alert resolved once its fault was gone

  @R3.3 @observability @alone
  Scenario: One request ID leads to every log line of a problem, even from a pod that is gone
    Given the "dev" environment is deployed
    When a job is submitted with a known request ID, and a request with that ID fails in the API
    Then the log store finds by that ID the API's lines, the worker's line for the job and the error detail, within 10 seconds
    When the engine-api pod that logged them is deleted
    Then its lines are still found in the log store

  @R3.4 @observability
  Scenario: A change in load is visible within 30 seconds, in Prometheus and in the live view
    Given the "dev" environment is deployed
    When a client starts sending 20 requests a second to the engine API
    Then Prometheus shows the new rate within 30 seconds, from samples less than 30 seconds old
    And the live view in a browser shows the engine's figures

  @R3.5 @observability @light @alone
  Scenario: History for capacity planning survives restarts and is kept 13 months
    Given the "dev" environment is deployed
    Then the running Prometheus keeps at least 13 months of data on a persistent volume
    And the capacity recording rules have data
    When Prometheus' pod is deleted and comes back
    Then the samples written before the restart are still there
    And the capacity report writes a CSV and a plot from the recorded aggregates

  @R3.2 @observability @nightly @alone
  Scenario: The same alert reaches the receiver in seconds with our intervals, in minutes with Prometheus' defaults
    Measured nightly (about 5 minutes): the defaults' pair scrapes the same exporter,
    evaluates the same rule and notifies the same receiver; only the intervals differ.
    Given the "staging" environment is deployed
    And the alert receiver is listening
    And a second Prometheus and Alertmanager with default intervals evaluate the EngineServiceDown rule
    When engine-api down in staging until both have notified
    Then ours reached the receiver sooner than the defaults', and both figures are recorded
