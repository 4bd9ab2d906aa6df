"""The warning service: the Big Data Warning List and key-scrutiny-to-black transfer recommendations."""
