"""The wire contract (shared/contracts.md) as pydantic models: the envelope, request and event data,
reference records, the registry of every message type, and the JSON Schemas generated from them."""
