# engine-api runtime image. Built by `python -m deployer images`, which passes
# BASE (our Debian python3 root file system, built here by debootstrap),
# VERSION and REVISION, and supplies site-packages/ (the pinned wheels from
# engine/requirements.txt plus ce_engine, precompiled) and sbom.cdx.json.
#
# Stage 1 copies out only what CPython needs to run; stage 2 starts from
# scratch: no shell, no package manager, no pip, a numeric non-root user, and
# bytecode compiled ahead of time so a read-only root file system works.
# checkov:skip=CKV_DOCKER_7: BASE is our own root file system, pinned by a content-hash tag the deployer passes
ARG BASE
FROM ${BASE} AS runtime-files
ARG ENGINE_UID=10001
RUN ["/bin/sh", "-ec", "\
  mkdir -p /runtime/usr/bin /runtime/usr/lib /runtime/etc /runtime/tmp /runtime/usr/share/sbom && \
  cp -a /usr/bin/python3.11 /runtime/usr/bin/ && \
  cp -a /usr/lib/python3.11 /runtime/usr/lib/ && \
  cd /runtime/usr/lib/python3.11 && \
  rm -rf test idlelib tkinter turtledemo ensurepip lib2to3 pydoc_data distutils venv \
         unittest/test config-3.11-x86_64-linux-gnu && \
  cp -a /usr/lib/x86_64-linux-gnu /runtime/usr/lib/ && \
  cd /runtime/usr/lib/x86_64-linux-gnu && \
  rm -rf perl-base perl gconv libapt-pkg* libapt-private* libdb-* libperl* audit e2fsprogs && \
  cp -a /usr/lib64 /runtime/usr/ && \
  ln -s usr/bin /runtime/bin && ln -s usr/lib /runtime/lib && ln -s usr/lib64 /runtime/lib64 && \
  cp -a /etc/ssl /runtime/etc/ && \
  echo \"engine:x:${ENGINE_UID}:${ENGINE_UID}:engine:/nonexistent:/nonexistent\" > /runtime/etc/passwd && \
  echo \"engine:x:${ENGINE_UID}:\" > /runtime/etc/group && \
  chmod 1777 /runtime/tmp"]

FROM scratch
ARG ENGINE_UID=10001
ARG VERSION=unknown
ARG REVISION=unknown
COPY --from=runtime-files /runtime/ /
COPY site-packages/ /opt/engine/site-packages/
COPY sbom.cdx.json /usr/share/sbom/engine.cdx.json
ENV PYTHONPATH=/opt/engine/site-packages PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/usr/bin LANG=C.UTF-8 ENGINE_REVISION=${REVISION}
USER ${ENGINE_UID}:${ENGINE_UID}
EXPOSE 8080
# For `docker run`; Kubernetes uses the probes in infra/environments/base instead.
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["/usr/bin/python3.11", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/python3.11", "-m", "ce_engine.api"]
LABEL org.opencontainers.image.title="engine-api" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="consciousness-engine/engine" \
      io.consciousness-engine.sbom="/usr/share/sbom/engine.cdx.json"
