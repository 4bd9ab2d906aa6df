-- The audit trail of decisions that changed an entry after its designation (the designation's
-- own decision is in its record): who revoked or amended it, under which decision, when.
CREATE TABLE designation_decisions (
    request_id     text PRIMARY KEY,
    designation_id text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('revoke', 'amend')),
    unit           text NOT NULL,
    decision       jsonb NOT NULL,
    reason         text,
    decided_at     timestamptz NOT NULL
);
CREATE INDEX designation_decisions_by_designation ON designation_decisions (designation_id);
