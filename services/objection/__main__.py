"""`python -m services.objection`: serve the objection service (port 8104 by default)."""

from services.objection.app import main

main()
