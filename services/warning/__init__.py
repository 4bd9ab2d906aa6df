"""The warning service (see its issue; built on libs/common)."""
