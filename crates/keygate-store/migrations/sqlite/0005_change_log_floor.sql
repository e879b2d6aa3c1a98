-- keygate schema, version 5 (SQLite): change-log pruning. Entries up to `seq` may have
-- been deleted; a follower that has applied less than that reloads everything.
CREATE TABLE change_log_floor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO change_log_floor (id, seq) VALUES (1, 0);
CREATE INDEX change_log_changed_on ON change_log(changed_on);
