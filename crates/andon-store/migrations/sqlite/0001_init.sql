-- The event log: every state change in Andon, in order. `seq` is the rowid,
-- assigned by the appender inside a write transaction, so it has no gaps.
-- `type` and `run_id` duplicate parts of `body` so they can be filtered and
-- indexed without parsing JSON.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    type    TEXT    NOT NULL,
    run_id  INTEGER,
    body    TEXT    NOT NULL
);
CREATE INDEX events_run_id ON events (run_id) WHERE run_id IS NOT NULL;

-- API tokens: never events, because the log is readable by every viewer.
-- Only the SHA-256 of a token's secret is kept.
CREATE TABLE tokens (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    environment   TEXT,
    hash          TEXT    NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0
);

-- Secrets, sealed with the key in DATA/secret.key: version byte, nonce, ciphertext.
CREATE TABLE secrets (
    scope         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    sealed        BLOB    NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
