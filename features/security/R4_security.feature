Feature: R4 - Secure by design (security officer)
  Protect the platform's data and communications. Every refusal is shown
  beside an accepted control in the same run, so a broken probe cannot pass.

  @R4.1 @security @light
  Scenario: The engine reaches Postgres only over mutually authenticated TLS
    Given a running cluster
    And the "dev" and "production" environments are deployed
    Then every engine connection to dev's Postgres uses TLS 1.3 with a verified client certificate
    And from dev's engine-api pod Postgres accepts the engine's certificate and refuses plaintext, no certificate and production's certificate

  @R4.1 @security @light
  Scenario: Clients reach the engine API only over TLS, and the wire shows no plaintext
    Given a running cluster
    And a fresh namespace
    And the "dev" environment is deployed
    Then the engine API answers only over TLS, with a certificate of its own environment's CA
    And a packet capture on the engine-api's node holds a plaintext marker but not a TLS one
    And engine-api's metrics report when each of its certificates expires, as issued

  @R4.1 @security @resilience @alone
  Scenario: Certificates are issued again and rolled in with no failed request
    Given a running cluster
    And the "staging" environment is deployed
    And a client pod sending requests to the engine API
    When the environment's certificates are issued again
    Then engine-api and Postgres present the certificates just issued
    And no request failed while the certificates were rolled in

  @R4.2 @security @alone
  Scenario: Secrets are ciphertext in etcd, and the key rotates without breaking the engine
    Given a running cluster
    And a fresh namespace
    And the "dev" environment is deployed
    When a Secret and a ConfigMap holding the same marker are created
    Then the ConfigMap's raw etcd value shows the marker
    And the Secret's raw etcd value is ciphertext under the cluster's current key
    And the environment's own Secret is ciphertext in etcd
    When the Secret encryption key is rotated
    Then every Secret's raw etcd value is under the new key
    And the engine API restarted after the rotation still accepts its environment's tokens

  @R4.2 @security @light
  Scenario: User content is ciphertext in the database files on the node
    Given a running cluster
    And the "dev" environment is deployed
    When a session whose title holds a marker is written by a writer with a marked name
    Then the API reads the title back in clear
    And the database files on the node hold the writer's name but not the title

  @R4.3 @security @light
  Scenario: The engine's secrets are nowhere but in their Secret and their mounted files
    Given a running cluster
    And a fresh namespace
    And the "dev" environment is deployed
    Then the environment's secret values are found in its Secret
    And they appear in no pod spec, ConfigMap, container log or engine image
    And the engine reads them from files that only its own user can read
    And a secret scanner finds nothing in the repository, but finds a planted key
    And no identity of the stack's namespaces can read a Secret, while a granted one can

  @R4.4 @security @light
  Scenario: Authentication and authorisation are enforced on every route
    Given a running cluster
    And the "dev" environment is deployed
    Then every route answers each kind of credential with exactly the expected status
    And no refused request stored anything
    And repeated failures from one client are rate limited while another client is served
    And the Kubernetes API refuses an anonymous request for the environment's secrets

  @R4.4 @security @light
  Scenario: Pod Security admission rejects privileged, host and root pods in the stack's namespace
    Given a running cluster
    And a fresh namespace
    And the "dev" environment is deployed
    Then a compliant pod is admitted in the environment's namespace
    And a privileged pod, a hostPath pod and a root pod are each rejected with the API's reason

  @R4.4 @security @light
  Scenario: Only the monitoring plane's own pods, the API server and the delivery controller's queries reach it, so no one else reads the logs or silences an alert
    Given a running cluster
    And the "dev" environment is deployed
    Then a pod of the monitoring plane opens every port the plane serves
    And dev's client pod reaches dev's API but none of the monitoring plane's ports
    And Prometheus, Alertmanager, the alert receiver, VictoriaLogs and the log agent on every node answer through the API server

  @R4.4 @security @light
  Scenario: The cluster's own endpoints pass the CIS Kubernetes Benchmark's kubeadm checks
    Given a running cluster
    And a fresh namespace
    Then the kubelet on every node refuses anonymous requests but answers through the API server
    And etcd refuses a client without a certificate of its CA
    And profiling is off on the API server, the controller manager and the scheduler
    And the control plane's keys and configuration files are readable by root only

  @R4.5 @security @light
  Scenario: Secret access and refused engine requests are audited, and tampering is detected
    Given a running cluster
    And the "dev" environment is deployed
    When the environment's Secret is read by the operator and refused to the engine's identity
    Then the API server's audit log names both identities and outcomes without the secret value
    When a forged token and a reader's write are refused by the engine API
    Then the engine's audit trail records both refusals with who, what, when and from where
    And the audit chain verifies, and altering or removing an event in it is detected
