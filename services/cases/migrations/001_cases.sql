-- The cases service's own state, all of it derived from the events and reports it consumes.

-- Every designation (whole record as the designation events carry it): a case names one, and is
-- checked against its list, field, effective period and removal.
CREATE TABLE designations (
    designation_id text PRIMARY KEY,
    subject_id     text NOT NULL,
    list           text NOT NULL,
    field          text NOT NULL,
    unit           text NOT NULL,
    province       text NOT NULL,       -- the designating unit's province (region's first two digits + 0000)
    status         text NOT NULL CHECK (status IN ('active', 'removed')),
    effective_from date NOT NULL,
    effective_to   date NOT NULL,
    decided_on     date NOT NULL,       -- the designation decision's date: the year it counts in
    removed_on     date,                -- local (Asia/Shanghai) day it left its list
    removal_reason text,
    record         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL -- time of the event that last wrote it
);
CREATE INDEX designations_field ON designations (field);

-- Objections as the objection service announces them: while one is open on a designation, no
-- punishment may be applied on it. Overdue is still open; resolved or the entry gone is closed.
CREATE TABLE objections (
    objection_id   text PRIMARY KEY,
    designation_id text NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at      timestamptz,
    closed_at      timestamptz,
    outcome        text
);
CREATE INDEX objections_open ON objections (designation_id) WHERE status = 'open';

-- Enforcement cases: one per accepted report (the case id is the report's id).
CREATE TABLE cases (
    case_id        text PRIMARY KEY,
    designation_id text NOT NULL,
    subject_id     text NOT NULL,
    subject        jsonb NOT NULL,
    list           text NOT NULL,
    field          text NOT NULL,
    standard       text NOT NULL,
    public         boolean NOT NULL,    -- the entry's standard is public (typical cases shown publicly)
    mou            text NOT NULL,
    measure        text NOT NULL,
    measure_kind   text NOT NULL CHECK (measure_kind IN ('reward', 'punishment')),
    unit           text NOT NULL,       -- the reporting (enforcing) unit
    province       text NOT NULL,       -- its province
    applied_on     date NOT NULL,
    outcome        text NOT NULL,
    description    text NOT NULL,
    typical        boolean NOT NULL,
    media          jsonb NOT NULL,
    media_reported boolean NOT NULL,
    reported_by    text NOT NULL,       -- the report's source
    recorded_at    timestamptz NOT NULL -- time of the report event
);
CREATE INDEX cases_applied_on ON cases (applied_on, case_id);
CREATE INDEX cases_measure ON cases (measure, applied_on);
CREATE INDEX cases_province ON cases (province, applied_on);
CREATE INDEX cases_designation ON cases (designation_id);
CREATE INDEX cases_typical ON cases (applied_on DESC, case_id) WHERE typical;

-- Tallies kept in the same transaction as the cases they count: what the indicators read, so an
-- indicator costs a few hundred rows whatever the number of cases.
CREATE TABLE case_tallies (
    year           integer NOT NULL,
    month          integer NOT NULL,
    province       text NOT NULL,
    unit           text NOT NULL,
    field          text NOT NULL,
    list           text NOT NULL,
    measure        text NOT NULL,
    measure_kind   text NOT NULL,
    cases          bigint NOT NULL,
    media_cases    bigint NOT NULL,
    typical_cases  bigint NOT NULL,
    PRIMARY KEY (year, month, province, unit, field, list, measure)
);

-- Designations made, by the year of their decision and the designating unit's province.
CREATE TABLE designation_tallies (
    year         integer NOT NULL,
    province     text NOT NULL,
    list         text NOT NULL,
    designations bigint NOT NULL,
    PRIMARY KEY (year, province, list)
);
