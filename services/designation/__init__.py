"""The designation service (see its issue; built on libs/common)."""
