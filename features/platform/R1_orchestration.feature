Feature: R1 - Containerised, orchestrated infrastructure (CTO)
  Scalability, resilience and easy deployment of the Consciousness Engine.

  @R1.1 @performance
  Scenario: The deployed services run in optimised containers
    Given a running cluster
    And a fresh namespace
    And the "dev" environment is deployed
    Then every engine container runs as a non-root user with a read-only root file system
    And no engine image contains a shell or a package manager
    And every engine container declares CPU and memory requests and limits
    And the engine-api image is at most 100 MB
    And every engine image carries an SBOM

  @R1.2 @resilience
  Scenario: Load makes Kubernetes scale the worker out, and back in when it ends
    Given a running cluster
    And the "production" environment is deployed
    When CPU-heavy jobs keep arriving for 2 minutes
    Then the engine-worker deployment scales out within 5 minutes
    When the jobs stop
    Then the engine-worker deployment scales back in within 5 minutes

  @R1.3 @resilience
  Scenario: A crashed service process is restarted and a deleted pod is replaced
    Given a running cluster
    And a fresh namespace
    And a web service with 2 replicas spread over the workers
    And a client pod sending requests to the service
    When the service's main process is killed inside one container
    Then that container is restarted by the kubelet
    When one of the service's pods is deleted
    Then a replacement pod becomes Ready
    And the service kept answering while it healed

  @R1.4 @resilience
  Scenario: A new version rolls out, and back, with zero failed requests
    Given a running cluster
    And the "staging" environment is deployed
    And a client pod sending requests to the engine API
    When a new engine-api version is deployed
    Then the rollout completes with every pod on the new version
    When the previous engine-api version is deployed again
    Then the rollout completes with every pod on the previous version
    And no request failed during either rollout

  @R1.5 @observability
  Scenario: Metrics give visibility on every layer, from the nodes to the database
    Given the "dev" environment is deployed
    When the engine serves requests and finishes a job
    Then every scrape target is up, each layer of the catalogue among them
