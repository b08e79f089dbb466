"""Settings, declared once. Every value comes from a ``FHIRHUB_*`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The content folders at the top of the project, as DESIGN.md lays them out.
_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FHIRHUB_", env_file=None, extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'fhirhub.sqlite3'}",
        description="SQLAlchemy URL; an SQLite file under the working directory by default.",
    )
    auth: Literal["off"] = Field(
        default="off", description="Authorisation mode; 'off' until OAuth 2 lands."
    )
    base_url: str | None = Field(
        default=None,
        description="Public base URL of the FHIR endpoint; derived from the request when unset.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, description="Largest request body accepted (413 above)."
    )
    default_page_size: int = 50
    max_page_size: int = 1000
    db_pool_size: int = 10
    db_connect_timeout: int = Field(
        default=5,
        ge=2,
        description="Seconds to wait for a new database connection (PostgreSQL; 503 after).",
    )
    db_statement_timeout: float = Field(
        default=30.0,
        ge=0,
        description="Seconds any one statement of a request may run before the database "
        "cancels it (503); 0 for none. Applies to the server, not to CLI jobs.",
    )
    search_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a search (or read by id) may hold the database before it is "
        "cancelled and answered 503 with Retry-After.",
    )
    search_max_parameters: int = Field(
        default=64,
        ge=1,
        description="Most parameters (name=value pairs) one search may have (400 above).",
    )
    search_max_values: int = Field(
        default=500,
        ge=1,
        description="Most comma-separated values all parameters of one search may have together "
        "(400 above).",
    )
    search_max_included: int = Field(
        default=1000,
        ge=0,
        description="Most resources _include/_revinclude add to one page; the Bundle says when "
        "more were left out.",
    )
    max_search_body_bytes: int = Field(
        default=1024 * 1024,
        description="Largest form body of POST [type]/_search (413 above).",
    )
    broker_url: str | None = Field(default=None, description="Celery broker; in-process if unset.")
    log_level: str = "INFO"
    # Ingest and jobs (fhirhub.ingest, fhirhub.jobs)
    mappings_dir: Path = Field(
        default=_ROOT / "mappings", description="Per-source mapping tables (mappings/)."
    )
    terminology_dir: Path = Field(
        default=_ROOT / "terminology", description="ConceptMaps, region codes (terminology/)."
    )
    broker_queue: str = Field(default="fhirhub", description="The queue of the ingest tasks.")
    broker_visibility_timeout: int = Field(
        default=3600,
        description="Redis: seconds before an unacknowledged task is delivered again.",
    )
    ingest_max_attempts: int = Field(
        default=5, description="Attempts at one inbox message before it stays failed."
    )
    ingest_sweep_after: int = Field(
        default=300,
        description="Seconds after which beat re-enqueues a message still waiting.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
