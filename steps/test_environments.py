"""Scenarios of features/environments."""

from pytest_bdd import scenarios

scenarios("../features/environments")
