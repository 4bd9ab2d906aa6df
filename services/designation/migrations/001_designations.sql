-- The designation service's own state: every designation (active and removed) with its whole
-- record as the events carry it, and the ledger of request answers for GET /v1/requests/{id}.

CREATE TABLE designations (
    designation_id text PRIMARY KEY,
    subject_id     text NOT NULL,
    list           text NOT NULL,
    field          text NOT NULL,
    standard       text NOT NULL,
    unit           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('active', 'removed')),
    effective_from date NOT NULL,
    effective_to   date NOT NULL,
    record         jsonb NOT NULL,
    created_at     timestamptz NOT NULL,  -- time of the request that created it (not the clock)
    updated_at     timestamptz NOT NULL
);

-- The rules look up a subject's active entries; expiry and repeal scan active entries.
CREATE INDEX designations_active_subject ON designations (subject_id) WHERE status = 'active';
CREATE INDEX designations_active_expiry ON designations (effective_to) WHERE status = 'active';
CREATE INDEX designations_active_standard ON designations (standard) WHERE status = 'active';

-- Every answer on credit.feedback.v1 (from any service), and the requests the HTTP ingress took
-- before their answer arrived (status pending).
CREATE TABLE requests (
    request_id   text PRIMARY KEY,
    request_type text NOT NULL,
    unit         text,
    status       text NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    result_id    text,
    errors       jsonb,
    answered_by  text,
    received_at  timestamptz NOT NULL,
    answered_at  timestamptz
);
