"""Source adapters: one package per source, found by the engine through entry points."""
