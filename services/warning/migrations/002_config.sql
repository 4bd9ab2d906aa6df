-- Configuration the stored state was judged under (the warning threshold): a start with another
-- value re-judges every subject once.
CREATE TABLE config (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);
