-- What the platform accepted, as it was signed (contracts.md, Security): each accepted request
-- that designated, revoked or amended an entry, with the principal it was proven to come from,
-- its key id and signature, the platform's time of receipt and the envelope exactly as signed, so
-- anyone holding the public key can verify the decision later (`credit-keys verify`).
-- Insert-only: the triggers refuse any update, delete or truncate.
CREATE TABLE request_signatures (
    request_id     text PRIMARY KEY,
    designation_id text NOT NULL,
    principal      text NOT NULL,
    signaturekid   text NOT NULL,
    signature      text NOT NULL,
    received_at    timestamptz NOT NULL,
    envelope       jsonb NOT NULL
);
CREATE INDEX request_signatures_by_designation ON request_signatures (designation_id);

CREATE FUNCTION request_signatures_are_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'request_signatures is insert-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER request_signatures_no_update BEFORE UPDATE OR DELETE ON request_signatures
    FOR EACH ROW EXECUTE FUNCTION request_signatures_are_insert_only();
CREATE TRIGGER request_signatures_no_truncate BEFORE TRUNCATE ON request_signatures
    FOR EACH STATEMENT EXECUTE FUNCTION request_signatures_are_insert_only();
