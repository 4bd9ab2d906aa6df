"""`python -m services.designation`: serve the designation service (port 8101 by default)."""

from services.designation.app import main

main()
