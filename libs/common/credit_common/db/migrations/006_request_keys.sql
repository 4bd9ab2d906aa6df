-- A request is known by (source, id) (contracts.md, Integrity rules): two units may use one id,
-- and each is its own request. The signed audit of accepted requests is therefore keyed by the
-- principal the request was proven to come from and its id. (Inbox rows of requests are keyed by
-- `outcomes.request_key`; rows written before this migration keep the bare id: see the README's
-- upgrade note.)
ALTER TABLE accepted_requests DROP CONSTRAINT accepted_requests_pkey;
ALTER TABLE accepted_requests ADD PRIMARY KEY (principal, request_id);
