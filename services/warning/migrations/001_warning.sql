-- The warning service's own state, all of it derived from the events it consumes.

-- Every active key-scrutiny entry (whole record as the designation events carry it), in any field:
-- key fields count toward the warning list, and any field can meet a serious conduct report.
CREATE TABLE entries (
    designation_id text PRIMARY KEY,
    subject_id     text NOT NULL,
    field          text NOT NULL,
    unit           text NOT NULL,
    record         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL  -- time of the event that last wrote it
);
CREATE INDEX entries_subject ON entries (subject_id);
CREATE INDEX entries_field ON entries (field);

-- Which fields are key fields, as this consumer last read them from credit.reference.v1 (its own
-- ordered copy, so a re-evaluation never races the process-wide reference cache).
CREATE TABLE key_fields (
    code       text PRIMARY KEY,
    key_field  boolean NOT NULL,
    updated_at timestamptz NOT NULL
);

-- A subject's place on the warning list: listed (with the fields and entries that keep it there)
-- or cleared (left it; kept so its history stays readable).
CREATE TABLE warnings (
    subject_id      text PRIMARY KEY,
    subject         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('listed', 'cleared')),
    fields          text[] NOT NULL,
    designation_ids text[] NOT NULL,
    since           date,              -- the day it was (last) listed
    listed_at       timestamptz,
    cleared_at      timestamptz,
    updated_at      timestamptz NOT NULL,
    last_event_id   text NOT NULL      -- the warning event that recorded this state
);
CREATE INDEX warnings_listed ON warnings (subject_id) WHERE status = 'listed';

-- Conduct reports as accepted (the audit trail of what caused a recommendation).
CREATE TABLE conduct_reports (
    report_id   text PRIMARY KEY,
    subject_id  text NOT NULL,
    field       text NOT NULL,
    unit        text NOT NULL,
    serious     boolean NOT NULL,
    occurred_on date NOT NULL,
    report      jsonb NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX conduct_reports_subject ON conduct_reports (subject_id);

-- Transfer recommendations (key scrutiny to black): open until the designating unit transfers the
-- entry or it leaves its list; overdue (and escalated) once due_on is over.
CREATE TABLE recommendations (
    recommendation_id text PRIMARY KEY,
    subject_id        text NOT NULL,
    designation_id    text NOT NULL,
    unit              text NOT NULL,
    field             text NOT NULL,
    conduct_report_id text NOT NULL,
    status            text NOT NULL CHECK (status IN ('open', 'overdue', 'closed')),
    due_on            date NOT NULL,
    escalated_to      text,
    record            jsonb NOT NULL,   -- the key-scrutiny designation as it stood when recommended
    created_at        timestamptz NOT NULL,
    overdue_at        timestamptz,
    closed_at         timestamptz,
    closed_reason     text,             -- transferred, or the entry's removal reason
    closed_by         text              -- the black designation, or the removal event
);
CREATE INDEX recommendations_pending_designation ON recommendations (designation_id) WHERE status <> 'closed';
CREATE INDEX recommendations_open_due ON recommendations (due_on) WHERE status = 'open';
CREATE INDEX recommendations_subject ON recommendations (subject_id);
CREATE INDEX recommendations_status ON recommendations (status, recommendation_id);
