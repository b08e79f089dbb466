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
    ingest_sweep_interval: float = Field(
        default=60.0,
        description="Seconds between sweeps of the inbox (Celery beat, or the server itself "
        "when no broker is set).",
    )
    ingest_lease_seconds: int = Field(
        default=60,
        description="Seconds a worker holds a message it processes; a message still "
        "'processing' after that is taken to be a dead worker's and handed out again.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
