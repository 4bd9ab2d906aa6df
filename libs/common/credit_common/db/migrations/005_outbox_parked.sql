-- Outbox rows the broker would refuse (a record over the topics' max.message.bytes): moved here
-- by the relay instead of being retried for ever at the head of the outbox, with the reason.
-- Readiness is red while any row is here; an operator reads it, fixes the cause, deletes it.
CREATE TABLE outbox_parked (
    id         bigint PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    value      bytea,
    headers    jsonb,
    created_at timestamptz NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL
);
