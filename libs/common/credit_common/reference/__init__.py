"""Reference data: the catalogue (fields, units, standards, MOUs, calendar) as YAML files, their
loader and CLI, the in-memory `Catalog`, and the `ReferenceCache` that follows `credit.reference.v1`."""
