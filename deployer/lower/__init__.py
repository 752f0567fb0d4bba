"""Thin wrappers around the tools the actions drive: processes, Docker, Go, kind, Kubernetes."""
