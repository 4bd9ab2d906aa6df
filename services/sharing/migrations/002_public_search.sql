-- Public search (contracts.md, Additions): a part of the subject's name or of its identifier, in
-- the public view (a natural person's identity number only in its masked form, as
-- domain.public_view and identifiers.mask_resident_id make it, so a search by the full number finds
-- nothing the public feed would not show), all in lower case (a search ignores case). A trigram
-- index over the public entries on their lists answers `LIKE '%part%'` without a scan. pg_trgm
-- lives in schema credit_ext, made by the admin with the service schemas (credit_common.db.roles),
-- as a service's roles may create nothing.
ALTER TABLE entries ADD COLUMN search text GENERATED ALWAYS AS (
    lower(coalesce(entry #>> '{subject,name}', '') || ' ' ||
    CASE
        WHEN entry #>> '{subject,kind}' = 'natural_person' OR entry #>> '{subject,scheme}' = 'resident_id' THEN
            CASE
                WHEN length(subject_id) <= 10 THEN repeat('*', length(subject_id))
                ELSE left(subject_id, 6) || repeat('*', length(subject_id) - 10) || right(subject_id, 4)
            END
        ELSE subject_id
    END)
) STORED;
CREATE INDEX entries_search ON entries USING gin (search credit_ext.gin_trgm_ops)
    WHERE public AND status = 'active';
