-- Same shape as the SQLite schema (see migrations/sqlite/0001_init.sql).
-- `body` is TEXT, not JSONB: JSONB rejects "\u0000", which a commit message
-- may legitimately contain, and the store never queries inside bodies.
CREATE TABLE events (
    seq     BIGINT PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    type    TEXT   NOT NULL,
    run_id  BIGINT,
    body    TEXT   NOT NULL
);
CREATE INDEX events_run_id ON events (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE tokens (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    environment   TEXT,
    hash          TEXT    NOT NULL UNIQUE,
    created_at_ms BIGINT  NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE secrets (
    scope         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    sealed        BYTEA  NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
