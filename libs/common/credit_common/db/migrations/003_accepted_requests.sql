-- What the platform accepted, as it was signed (contracts.md, Security), for every service whose
-- requests the bus answers itself (the designation service keeps its own, per designation): the
-- request, the principal it was proven to come from, its key id and signature, the platform's
-- time of receipt and the very bytes the signature covers (the RFC 8785 form of the envelope
-- without `signature`), so anyone holding the public key can verify the decision later.
-- Insert-only: the runtime role may not update, delete or truncate it (not its owner), and the
-- triggers refuse it to anyone else too.
CREATE TABLE accepted_requests (
    request_id   text PRIMARY KEY,
    request_type text NOT NULL,
    result_id    text,
    principal    text NOT NULL,
    signaturekid text NOT NULL,
    signature    text NOT NULL,
    received_at  timestamptz NOT NULL,
    signed       text NOT NULL
);

CREATE FUNCTION accepted_requests_are_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'accepted_requests is insert-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER accepted_requests_no_update BEFORE UPDATE OR DELETE ON accepted_requests
    FOR EACH ROW EXECUTE FUNCTION accepted_requests_are_insert_only();
CREATE TRIGGER accepted_requests_no_truncate BEFORE TRUNCATE ON accepted_requests
    FOR EACH STATEMENT EXECUTE FUNCTION accepted_requests_are_insert_only();
