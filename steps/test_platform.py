"""Scenarios of features/platform."""

from pytest_bdd import scenarios

scenarios("../features/platform")
