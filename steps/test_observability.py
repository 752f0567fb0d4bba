"""Scenarios of features/observability."""

from pytest_bdd import scenarios

scenarios("../features/observability")
