@smoke
Feature: The test cluster is real
  Every criterion is proven on this cluster, so first prove the cluster itself:
  nodes, DNS, pod networking across nodes, storage, resource metrics and a
  NetworkPolicy that really blocks traffic.

  Background:
    Given a running cluster
    And a fresh namespace

  Scenario: All nodes are Ready, with at least two workers
    Then every node is Ready
    And there are at least 2 worker nodes

  Scenario: Cluster DNS resolves a Service name from a pod on each worker
    Given a web server on each worker node behind the service "web"
    Then a pod on each worker resolves the service "web" through cluster DNS

  Scenario: Pod-to-pod traffic crosses nodes
    Given a web server on each worker node behind the service "web"
    Then every web server answers a client pod on every other worker

  Scenario: A PersistentVolumeClaim is provisioned dynamically
    When a pod writes to a new 64Mi persistent volume claim
    Then the claim is bound to a dynamically provisioned volume
    And the pod reads back what it wrote

  Scenario: Resource metrics exist for nodes and pods
    Given a web server on each worker node behind the service "web"
    Then resource metrics are reported for every node
    And resource metrics are reported for the web server pods

  Scenario: A deny-all NetworkPolicy really blocks traffic
    Given a web server on each worker node behind the service "web"
    And every web server answers a client pod on every other worker
    When a NetworkPolicy denies all ingress in the namespace
    Then no web server answers a client pod on any other worker
    When the NetworkPolicy is removed
    Then every web server answers a client pod on every other worker
