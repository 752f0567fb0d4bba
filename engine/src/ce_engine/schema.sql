-- Idempotent schema: applied by engine-api at start-up.
--
-- Changes are expand/contract, because a rollout runs two releases side by side and
-- a rollback runs the previous release on the schema the new one migrated:
--   expand   - a release adds only what its code needs (a column nullable or with a
--              default, a table, an index); the release before it keeps working;
--   contract - what no running release reads any more is dropped in a later release.
-- A column renamed, retyped or made NOT NULL in one step breaks the release before it.
-- R1.4 rolls the next release (a column added) out and back under writing clients.
CREATE TABLE IF NOT EXISTS sessions (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS thoughts (
    id          BIGSERIAL PRIMARY KEY,
    session_id  BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    content     TEXT NOT NULL CHECK (length(content) BETWEEN 1 AND 4000),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS jobs (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    input        TEXT NOT NULL,
    iterations   INTEGER NOT NULL CHECK (iterations BETWEEN 1 AND 5000000),
    status       TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    result       TEXT,
    request_id   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
-- Every engine-api pod applies this while the others serve: on an up-to-date
-- database it must take no table lock. "CREATE INDEX IF NOT EXISTS" and
-- "ALTER TABLE ... DROP CONSTRAINT IF EXISTS" lock the table before they look
-- (ALTER TABLE: ACCESS EXCLUSIVE, which queues every read and write behind it),
-- so the catalog is asked first and they run only when there is work to do.
DO $$
BEGIN
    IF to_regclass('jobs_queued') IS NULL THEN
        CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued';
    END IF;
    -- User content is stored encrypted (ce_engine.crypto): lengths are checked on
    -- the plaintext by the API's validation, the ciphertext is longer.
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'sessions_title_check') THEN
        ALTER TABLE sessions DROP CONSTRAINT sessions_title_check;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'thoughts_content_check') THEN
        ALTER TABLE thoughts DROP CONSTRAINT thoughts_content_check;
    END IF;
END
$$;
