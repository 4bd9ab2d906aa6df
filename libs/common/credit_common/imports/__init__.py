"""Historical import (contracts.md, Additions): a unit's entries since 2018 from a JSONL or CSV
file, sent as `credit.designation.import` requests of up to 1,000 entries, resumable.

`files` reads and validates the file, `batches` cuts it into messages with deterministic ids,
`client.run_import` sends them and matches the answers, `results` holds the summary and the
refusals, `state` the state file a later run resumes from, `dryrun` the check without a
connection, `cli` the `credit-import` command."""
