"""The Consciousness Engine reference stack: engine-api and engine-worker."""

VERSION = "1.0.0"
