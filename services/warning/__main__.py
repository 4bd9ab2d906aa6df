"""`python -m services.warning`: serve the warning service (port 8103 by default)."""

from services.warning.app import main

main()
