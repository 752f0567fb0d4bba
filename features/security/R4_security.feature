Feature: R4 - Secure by design (security officer)
  Protect the platform's data and communications.

  @R4.1 @security @not_implemented
  Scenario: Service-to-service traffic is encrypted
    Given the "dev" environment is deployed
    Then the engine-api accepts only TLS from other pods
    And a plaintext connection to Postgres is refused

  @R4.2 @security @not_implemented
  Scenario: Secrets are encrypted at rest in etcd
    Given a running cluster
    When a Secret is created
    Then its raw etcd value is ciphertext, not the plaintext

  @R4.3 @security @not_implemented
  Scenario: Secrets are stored securely
    Given the "dev" environment is deployed
    Then no engine secret appears in a pod spec, an image or a log
    And only the engine's own service accounts can read its secrets

  @R4.4 @security
  Scenario: Authentication and authorisation are enforced
    Given a running cluster
    And the "dev" environment is deployed
    Then a request without a token is refused with 401
    And a request with a forged token is refused with 401
    And a reader's write is refused with 403
    And the Kubernetes API refuses an anonymous request for the environment's secrets

  @R4.5 @security @not_implemented
  Scenario: Security-relevant actions are audited
    Given a running cluster
    When a Secret is read by a service account
    Then the API server's audit log records who read it and when
