-- Idempotency with answers (contracts.md, Integrity rules): the SHA-256 of what each inbox row's
-- message said (for a signed request, of the canonical form its signature covers), so a repeat
-- with another body under the same id is told `duplicate_id` instead of being dropped in silence.
-- Rows from before this column have none: their repeats are dropped as before.
ALTER TABLE inbox ADD COLUMN digest bytea;
