-- A request is known by (source, id) (contracts.md, Integrity rules): two units may use one id,
-- and each is its own request with its own answer, ledger row and audit. The ledger is keyed by
-- the unit the request came from (the feedback topic's key: a unit code, or `portal`), the audit
-- of later decisions by the deciding unit, the signed requests by their proven principal.
UPDATE requests SET unit = '' WHERE unit IS NULL;
ALTER TABLE requests ALTER COLUMN unit SET NOT NULL;
ALTER TABLE requests DROP CONSTRAINT requests_pkey;
ALTER TABLE requests ADD PRIMARY KEY (unit, request_id);
CREATE INDEX requests_by_id ON requests (request_id);

ALTER TABLE designation_decisions DROP CONSTRAINT designation_decisions_pkey;
ALTER TABLE designation_decisions ADD PRIMARY KEY (unit, request_id);

ALTER TABLE request_signatures DROP CONSTRAINT request_signatures_pkey;
ALTER TABLE request_signatures ADD PRIMARY KEY (principal, request_id);
