-- Which server leads, and where its API is: followers forward leader-only
-- requests there. One row at most; written only through the session that
-- holds the leadership lock, so a deposed leader cannot overwrite it.
CREATE TABLE leader (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    api      TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    since_ms BIGINT  NOT NULL
);
