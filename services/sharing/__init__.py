"""The sharing service (see its issue; built on libs/common)."""
