"""`python -m services.sharing`: serve the sharing service (port 8102 by default)."""

from services.sharing.app import main

main()
