"""The objection service (see its issue; built on libs/common)."""
