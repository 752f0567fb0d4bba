# engine-postgres: PostgreSQL 15 from Debian's packages on our debootstrap
# root file system (BASE, passed by the deployer), trimmed to what the server,
# its tools and the exporter sidecar run, then flattened into one layer (files
# deleted in a later layer would still be shipped). Keeps bash on purpose:
# pg-entrypoint (initdb on first start) is a script; the engine images have none.
# checkov:skip=CKV_DOCKER_7: BASE is our own root file system, pinned by a content-hash tag the deployer passes
ARG BASE
FROM ${BASE} AS trimmed
ARG POSTGRES_UID=10002
COPY pg-entrypoint /usr/local/bin/pg-entrypoint
# Gone: the package managers (apt, dpkg, debconf), perl (only postgresql-common's
# cluster wrappers use it; the suite and the probes call /usr/lib/postgresql/15/bin),
# the LLVM JIT and its 130 MB of libraries (jit is off), the cluster the package
# made at install (pg-entrypoint makes its own), dash (sh is bash), and locales,
# documentation and manuals.
RUN ["/bin/bash", "-ec", "\
  groupadd --gid ${POSTGRES_UID} engine-db && \
  useradd --uid ${POSTGRES_UID} --gid ${POSTGRES_UID} --no-create-home engine-db && \
  mkdir -p /var/lib/postgresql/data && chown ${POSTGRES_UID}:${POSTGRES_UID} /var/lib/postgresql/data && \
  shopt -s nullglob && \
  rm -rf /usr/bin/apt* /usr/bin/dpkg* /usr/bin/debconf* /usr/sbin/dpkg* /usr/lib/apt /usr/lib/dpkg \
    /usr/lib/x86_64-linux-gnu/libapt-* /var/lib/apt /var/lib/dpkg /var/cache/apt /var/cache/debconf \
    /var/lib/debconf /etc/apt /usr/share/debconf \
    /usr/bin/perl* /usr/bin/cpan* /usr/lib/x86_64-linux-gnu/perl* /usr/share/perl* \
    /usr/lib/x86_64-linux-gnu/libperl.so* /usr/share/postgresql-common /usr/lib/postgresql/15/bin/pg_wrapper \
    /usr/bin/pg_* /usr/bin/psql /usr/bin/createdb /usr/bin/createuser /usr/bin/dropdb /usr/bin/dropuser \
    /usr/bin/clusterdb /usr/bin/reindexdb /usr/bin/vacuumdb /usr/sbin/pg_* \
    /usr/lib/x86_64-linux-gnu/libLLVM-* /usr/lib/x86_64-linux-gnu/libz3.so* \
    /usr/lib/postgresql/15/lib/bitcode /usr/lib/postgresql/15/lib/llvmjit* \
    /usr/share/locale /usr/share/i18n /usr/share/doc /usr/share/man /usr/share/info /usr/share/lintian \
    /var/lib/postgresql/15 /etc/postgresql /var/log/postgresql /var/cache/postgresql \
    /etc/cron.* /etc/logrotate.d /usr/share/bug \
    /usr/bin/dash && \
  ln -sf bash /usr/bin/sh"]

FROM scratch
ARG POSTGRES_UID=10002
ARG VERSION=unknown
COPY --from=trimmed / /
USER ${POSTGRES_UID}:${POSTGRES_UID}
EXPOSE 5432
# Postgres' "fast" shutdown: SIGTERM is "smart", which waits for every client
# (the engine's pools never leave) until the kubelet kills it 30 s later.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["/usr/lib/postgresql/15/bin/pg_isready", "-q", "-h", "127.0.0.1"]
ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]
LABEL org.opencontainers.image.title="engine-postgres" org.opencontainers.image.version="${VERSION}"
