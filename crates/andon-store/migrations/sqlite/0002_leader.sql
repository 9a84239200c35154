-- Same shape as migrations/postgres/0002_leader.sql. With SQLite there is
-- one server, so the row only records where it serves.
CREATE TABLE leader (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    api      TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    since_ms INTEGER NOT NULL
);
