-- The sharing service's own state. Every input event that concerns an entry is kept (inputs);
-- an entry's versions (history) and its current version (entries) are rebuilt from its inputs,
-- ordered by the time of the event that recorded them, so a late-arriving event lands in the right
-- place. Every change published on the list-change topics is kept with its seq (changes).

-- The one counter of change seqs. A batch takes its seqs with UPDATE ... RETURNING inside its
-- transaction: the row lock makes transactions that publish changes commit in seq order, so the
-- seqs any snapshot sees are always 1..n without a hole.
CREATE TABLE change_seq (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    value bigint NOT NULL
);
INSERT INTO change_seq (id, value) VALUES (true, 0);

-- Every input event about an entry: a designation record (created, amended, removed), an objection
-- opened or resolved, a warning listed, updated or cleared. `arrival` breaks ties of recorded_at.
CREATE TABLE inputs (
    event_id    text PRIMARY KEY,
    entry_id    text NOT NULL,
    arrival     bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    recorded_at timestamptz NOT NULL,  -- the event's time, never the clock
    reason      text,
    data        jsonb NOT NULL
);
CREATE INDEX inputs_entry ON inputs (entry_id);

-- One row per version of an entry. valid_from/valid_to: when it was on its list (valid_to null:
-- open-ended); recorded_at: when the platform learned this version; superseded_at: recorded_at of
-- the next version (null: still the latest).
CREATE TABLE history (
    entry_id      text NOT NULL,
    version       int NOT NULL,
    list          text NOT NULL,
    subject_id    text NOT NULL,
    public        boolean NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'removed')),
    reason        text,
    entry         jsonb NOT NULL,
    record        jsonb NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    recorded_at   timestamptz NOT NULL,
    superseded_at timestamptz,
    cause         text NOT NULL,
    PRIMARY KEY (entry_id, version)
);
CREATE INDEX history_subject ON history (subject_id, recorded_at);

-- The current view: the latest version of every entry, and the seq of the last change published
-- about it (null while none was: an entry first seen already removed is never announced).
CREATE TABLE entries (
    entry_id        text PRIMARY KEY,
    list            text NOT NULL,
    subject_id      text NOT NULL,
    field           text,
    standard        text,
    unit            text,
    region          text,
    public          boolean NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'removed')),
    reason          text,
    under_objection boolean NOT NULL,
    entry           jsonb NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    recorded_at     timestamptz NOT NULL,
    seq             bigint
);
CREATE INDEX entries_active ON entries (list, entry_id) WHERE status = 'active';
CREATE INDEX entries_seq ON entries (list, seq);
CREATE INDEX entries_subject ON entries (subject_id, list);

-- Every change published (its internal document; `public_sent` when the public topic got its public
-- view too), for GET /v1/changes and to rebuild a snapshot as of a seq for its later pages.
CREATE TABLE changes (
    seq         bigint PRIMARY KEY,
    event_id    text NOT NULL,
    type        text NOT NULL,
    list        text NOT NULL,
    entry_id    text NOT NULL,
    subject_id  text NOT NULL,
    field       text,
    unit        text,
    region      text,
    public      boolean NOT NULL,
    at          timestamptz NOT NULL,
    cause       text NOT NULL,
    public_sent boolean NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX changes_list ON changes (list, seq);
CREATE INDEX changes_entry ON changes (entry_id, seq);
