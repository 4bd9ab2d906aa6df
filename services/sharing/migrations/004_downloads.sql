-- Who downloaded what, and when (the notice, section V: liaisons download the lists): every
-- export, and every snapshot taken (the first page of a list read; its later pages are the same
-- snapshot). Public downloads name no principal: their client address stands for it.
CREATE TABLE downloads (
    download_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    principal    text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('export', 'snapshot')),
    public       boolean NOT NULL,
    list         text NOT NULL,
    format       text,              -- jsonl | csv (exports), null for a snapshot
    filters      jsonb NOT NULL,
    snapshot_seq bigint,
    bytes        bigint,
    outcome      text NOT NULL CHECK (outcome IN ('complete', 'failed'))
);
CREATE INDEX downloads_at ON downloads (at DESC, download_id DESC);
CREATE INDEX downloads_principal ON downloads (principal, at DESC);
