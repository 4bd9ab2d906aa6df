"""`python -m services.cases`: serve the cases service (port 8105 by default)."""

from services.cases.app import main

main()
