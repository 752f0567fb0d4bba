"""Scenarios of features/delivery."""

from pytest_bdd import scenarios

scenarios("../features/delivery")
