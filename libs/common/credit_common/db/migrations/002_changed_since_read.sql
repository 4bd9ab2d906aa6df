-- The optimistic path's way out (credit_common.messaging.consumer): a service's batch write is one
-- statement that re-reads, locked, the rows its rules read without a lock, and calls this when
-- any of them changed since. The statement, and with it the whole batch, then fails with
-- serialization_failure, and the consumer applies the batch again in a locking transaction.
CREATE FUNCTION changed_since_read(what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'rows changed since they were read: %', what USING ERRCODE = 'serialization_failure';
END
$$;
