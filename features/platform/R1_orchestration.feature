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

  @R1.2 @resilience @not_implemented
  Scenario: Load makes Kubernetes scale the worker automatically
    Given the "production" environment is deployed
    When CPU-heavy jobs are submitted for 3 minutes
    Then the engine-worker deployment scales out within 5 minutes
    And it scales back in after the load stops

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

  @R1.4 @resilience @not_implemented
  Scenario: A new version rolls out with zero failed requests
    Given the "staging" environment is deployed
    And a client pod sending requests to the engine API
    When a new engine-api version is deployed
    Then the rollout completes
    And no request failed during the rollout

  @R1.5 @observability @not_implemented
  Scenario: Metrics give visibility on every layer
    Given the "dev" environment is deployed
    Then Prometheus scrapes the nodes, the Kubernetes API, the engine-api and the engine-worker
