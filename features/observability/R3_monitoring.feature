Feature: R3 - Complete monitoring and observability (system administrator)
  Find and fix problems before users do.

  @R3.1 @observability @not_implemented
  Scenario: Critical metrics are collected
    Given the "dev" environment is deployed
    Then Prometheus holds request rate, error rate, latency, saturation and database metrics

  @R3.2 @observability @not_implemented
  Scenario: An anomaly sends an alert
    Given the "dev" environment is deployed
    When the engine-api starts failing requests
    Then Alertmanager delivers an alert to the test receiver

  @R3.3 @observability @not_implemented
  Scenario: Detailed logs are available for analysis
    Given the "dev" environment is deployed
    When a request is sent with a known request ID
    Then structured log lines with that request ID are found for the API and the worker

  @R3.4 @observability @not_implemented
  Scenario: Performance metrics are visible in real time
    Given the "dev" environment is deployed
    When traffic is sent to the engine API
    Then the request rate appears in Prometheus within 30 seconds

  @R3.5 @observability @not_implemented
  Scenario: Historical data is retained for capacity planning
    Given the "dev" environment is deployed
    Then Prometheus keeps metrics on a persistent volume with a retention of at least 15 days
    And metrics survive a restart of Prometheus
