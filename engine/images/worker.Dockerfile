# engine-worker: the engine-api image with another entry point (same files,
# same user, same SBOM). API_IMAGE is the engine-api tag of the same build.
# checkov:skip=CKV_DOCKER_7: API_IMAGE is the engine-api image of this build, tagged <version>-<git revision>
ARG API_IMAGE
FROM ${API_IMAGE}
ARG ENGINE_UID=10001
USER ${ENGINE_UID}:${ENGINE_UID}
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["/usr/bin/python3.11", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9090/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/python3.11", "-m", "ce_engine.worker"]
LABEL org.opencontainers.image.title="engine-worker"
