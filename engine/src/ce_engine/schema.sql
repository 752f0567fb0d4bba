-- Idempotent schema: applied by engine-api at start-up.
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
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (id) WHERE status = 'queued';
-- User content is stored encrypted (ce_engine.crypto): lengths are checked on
-- the plaintext by the API's validation, the ciphertext is longer.
ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_title_check;
ALTER TABLE thoughts DROP CONSTRAINT IF EXISTS thoughts_content_check;
