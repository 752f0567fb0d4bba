"""Builds, deploys, promotes and rolls back the Consciousness Engine."""
