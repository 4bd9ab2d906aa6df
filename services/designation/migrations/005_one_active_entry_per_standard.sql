-- One active entry per subject and standard, enforced by the database (contracts.md, Integrity
-- rules): the rule `already_designated` is judged on a read, and two instances judging requests
-- of one subject from two partitions could each read none and both insert. Deferred to the commit,
-- so a batch that removes an entry and designates again under the same standard in one statement
-- is judged on its end state; a batch that meets a concurrent insert fails whole and is applied
-- again, when its read sees the other entry and answers `already_designated`.
ALTER TABLE designations ADD CONSTRAINT designations_one_active_per_standard
    EXCLUDE USING btree (subject_id WITH =, standard WITH =) WHERE (status = 'active')
    DEFERRABLE INITIALLY DEFERRED;
