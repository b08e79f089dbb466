"""Storage: tables, engine and the repositories that own all SQL."""
