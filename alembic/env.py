"""Alembic environment: migrations run against ``sqlalchemy.url`` (set by fhirhub.storage)."""

from __future__ import annotations

from alembic import context

import fhirhub.storage.client_models
import fhirhub.storage.inbox_models
import fhirhub.storage.index_models
import fhirhub.storage.mpi_models
import fhirhub.storage.pull_models
import fhirhub.storage.view_models  # noqa: F401
from fhirhub.storage.engine import make_engine
from fhirhub.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        url = config.get_main_option("sqlalchemy.url")
        assert url
        engine = make_engine(url)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
