-- Publication delay (contracts.md, Additions): every change keeps the date of its entry's decision
-- (none on the warning list) and when the platform published it, and whether it came in by a
-- historical import (whose delay is not a publication delay). Changes made before this migration
-- take their own time as their publication.
ALTER TABLE changes
    ADD COLUMN decided_on date,
    ADD COLUMN published_at timestamptz,
    ADD COLUMN imported boolean NOT NULL DEFAULT false;
UPDATE changes SET decided_on = (data #>> '{entry,decision,decided_on}')::date, published_at = at;
-- GET /v1/stats/publication and the public statistics read the additions of designations.
CREATE INDEX changes_added ON changes (unit, published_at)
    WHERE type = 'credit.list.entry_added' AND decided_on IS NOT NULL;
