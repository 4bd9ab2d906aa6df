"""Who may speak for whom: signatures, tokens and principals."""
