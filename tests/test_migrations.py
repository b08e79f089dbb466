"""Migrations are reversible and produce exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import fhirhub.storage.client_models
import fhirhub.storage.inbox_models
import fhirhub.storage.index_models
import fhirhub.storage.mpi_models
import fhirhub.storage.pull_models
import fhirhub.storage.view_models  # noqa: F401
from fhirhub.storage.engine import downgrade, make_engine, migrate
from fhirhub.storage.models import Base


def test_migrations_match_models_and_reverse(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    downgrade(db_url, "base")
    assert "resources" not in inspect(engine).get_table_names()
    migrate(db_url)
    assert "resources" in inspect(engine).get_table_names()
    engine.dispose()
