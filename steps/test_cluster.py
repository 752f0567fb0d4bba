"""Scenarios of features/cluster."""

from pytest_bdd import scenarios

scenarios("../features/cluster")
