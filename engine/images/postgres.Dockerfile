# engine-postgres: PostgreSQL 15 from Debian's packages on our debootstrap
# root file system (BASE, passed by the deployer). Keeps a shell on purpose:
# pg-entrypoint (initdb on first start) is a script; the engine images have none.
# checkov:skip=CKV_DOCKER_7: BASE is our own root file system, pinned by a content-hash tag the deployer passes
ARG BASE
FROM ${BASE}
ARG POSTGRES_UID=10002
ARG VERSION=unknown
COPY pg-entrypoint /usr/local/bin/pg-entrypoint
RUN ["/bin/sh", "-ec", "\
  groupadd --gid ${POSTGRES_UID} engine-db && \
  useradd --uid ${POSTGRES_UID} --gid ${POSTGRES_UID} --no-create-home engine-db && \
  mkdir -p /var/lib/postgresql/data && chown ${POSTGRES_UID}:${POSTGRES_UID} /var/lib/postgresql/data"]
USER ${POSTGRES_UID}:${POSTGRES_UID}
EXPOSE 5432
# Postgres' "fast" shutdown: SIGTERM is "smart", which waits for every client
# (the engine's pools never leave) until the kubelet kills it 30 s later.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["/bin/sh", "-c", "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/pg_isready -q -h 127.0.0.1"]
ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]
LABEL org.opencontainers.image.title="engine-postgres" org.opencontainers.image.version="${VERSION}"
