"""The statuses of an inbox message, in one place for the table, the admin API and the CLI.

A module of its own, free of SQLAlchemy, so the command line can name them without loading the
database layer.
"""

from enum import StrEnum


class Status(StrEnum):
    received = "received"
    processing = "processing"  # claimed by a worker, until its lease runs out
    processed = "processed"
    rejected = "rejected"
    failed = "failed"
