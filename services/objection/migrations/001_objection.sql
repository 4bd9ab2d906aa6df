-- The objection service's own state, all of it derived from the events and requests it consumes.

-- Every designation (whole record as the designation events carry it, active and removed): an
-- objection or an application names one, and is routed to its designating unit.
CREATE TABLE designations (
    designation_id text PRIMARY KEY,
    subject_id     text NOT NULL,
    list           text NOT NULL,
    standard       text NOT NULL,
    unit           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('active', 'removed')),
    effective_from date NOT NULL,
    effective_to   date NOT NULL,
    record         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL  -- time of the event that last wrote it
);

-- Objections: open until the unit (or, once escalated, its parent) decides; overdue once due_on
-- is over; closed without a decision when the entry leaves its list otherwise.
CREATE TABLE objections (
    objection_id   text PRIMARY KEY,
    designation_id text NOT NULL,
    subject_id     text NOT NULL,
    unit           text NOT NULL,      -- the designating unit, which decides
    objector_key   text NOT NULL,      -- subject:<id> or unit:<code> (one open objection each)
    objector       jsonb NOT NULL,
    grounds        text NOT NULL,
    evidence       jsonb NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'overdue', 'resolved', 'closed')),
    due_on         date NOT NULL,
    escalated_to   text,
    record         jsonb NOT NULL,     -- the designation as it stood when the objection was filed
    filed_by       text NOT NULL,      -- the request's source
    filed_at       timestamptz NOT NULL,
    overdue_at     timestamptz,
    outcome        text,
    reasoning      text,
    decided_on     date,
    decided_by     text,
    resolved_at    timestamptz,
    closed_at      timestamptz,
    closed_reason  text,               -- the entry's removal reason
    closed_by      text                -- the removal event
);
CREATE INDEX objections_pending_designation ON objections (designation_id) WHERE status IN ('open', 'overdue');
CREATE INDEX objections_open_due ON objections (due_on) WHERE status = 'open';
CREATE INDEX objections_unit ON objections (unit, objection_id);
CREATE INDEX objections_escalated_to ON objections (escalated_to, objection_id) WHERE escalated_to IS NOT NULL;

-- Credit-restoration applications, with the same life as objections.
CREATE TABLE applications (
    application_id text PRIMARY KEY,
    designation_id text NOT NULL,
    subject_id     text NOT NULL,
    unit           text NOT NULL,
    applicant      jsonb NOT NULL,
    measures       jsonb NOT NULL,
    evidence       jsonb NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'overdue', 'resolved', 'closed')),
    applied_on     date NOT NULL,
    due_on         date NOT NULL,
    notify_by      date NOT NULL,
    escalated_to   text,
    record         jsonb NOT NULL,
    filed_by       text NOT NULL,
    filed_at       timestamptz NOT NULL,
    overdue_at     timestamptz,
    outcome        text,
    reasoning      text,
    decided_on     date,
    decided_by     text,
    resolved_at    timestamptz,
    closed_at      timestamptz,
    closed_reason  text,
    closed_by      text
);
CREATE INDEX applications_pending_designation ON applications (designation_id) WHERE status IN ('open', 'overdue');
CREATE INDEX applications_open_due ON applications (due_on) WHERE status = 'open';
CREATE INDEX applications_unit ON applications (unit, application_id);
CREATE INDEX applications_escalated_to ON applications (escalated_to, application_id) WHERE escalated_to IS NOT NULL;

-- Every restoration measure an application names, with what it is counted by: the designating
-- unit and its province, the list, and whether it is restoration training of the legal
-- representative of a black-listed enterprise.
CREATE TABLE restoration_measures (
    application_id         text NOT NULL,
    position               integer NOT NULL,
    designation_id         text NOT NULL,
    subject_id             text NOT NULL,
    list                   text NOT NULL,
    unit                   text NOT NULL,
    province               text NOT NULL,
    kind                   text NOT NULL,
    detail                 text NOT NULL,
    completed_on           date NOT NULL,
    hours                  double precision,
    legal_representative   text,
    legal_rep_training     boolean NOT NULL,
    recorded_at            timestamptz NOT NULL,
    PRIMARY KEY (application_id, position)
);
CREATE INDEX restoration_measures_unit ON restoration_measures (unit);
CREATE INDEX restoration_measures_province ON restoration_measures (province);
