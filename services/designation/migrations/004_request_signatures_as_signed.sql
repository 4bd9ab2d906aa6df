-- Keep the very bytes a signature covers (the RFC 8785 form of the envelope without `signature`,
-- as the verifier computed it) as text, instead of the envelope as jsonb: nothing to parse or
-- re-canonicalise on the write path, and a later check verifies exactly what was verified on
-- receipt. Rows written before keep their `envelope`.
ALTER TABLE request_signatures ALTER COLUMN envelope DROP NOT NULL, ADD COLUMN signed text;
ALTER TABLE request_signatures ADD CONSTRAINT request_signatures_kept CHECK (signed IS NOT NULL OR envelope IS NOT NULL);
