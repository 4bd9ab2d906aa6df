-- Every service schema: the inbox (idempotent consumer) and the outbox (what it will publish).

-- One row per processed event id (or topic:partition:offset for what had no id), written in the
-- same transaction as the state change it caused: that row is what makes processing exactly-once.
CREATE TABLE inbox (
    event_id     text PRIMARY KEY,
    topic        text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Events to publish, written in the same transaction as the state change; the relay sends them
-- in id order (idempotent producer, acks=all) and deletes them once Kafka has acknowledged.
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    value      bytea,
    headers    jsonb,  -- trace context; content-type is added by the relay
    created_at timestamptz NOT NULL DEFAULT now()
);
