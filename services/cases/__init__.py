"""The cases service (see its issue; built on libs/common)."""
