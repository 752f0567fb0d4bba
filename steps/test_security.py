"""Scenarios of features/security."""

from pytest_bdd import scenarios

scenarios("../features/security")
