"""Settings, declared once. Every value comes from a ``FHIRHUB_*`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The content folders at the top of the project (docs/architecture.md, "Where things live").
_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FHIRHUB_", env_file=None, extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'fhirhub.sqlite3'}",
        description="SQLAlchemy URL; PostgreSQL as `postgresql://user@host/db` (psycopg 3).",
        json_schema_extra={"shown_default": "`fhirhub.sqlite3` in the working directory"},
    )
    auth: Literal["on", "off"] = Field(
        default="off",
        description="`on`: every route but metadata, `.well-known`, `/auth/token`, healthz and "
        "readyz needs an access token (OAuth 2 client credentials, SMART v2 scopes); `fhirhub "
        "serve` refuses to start without signing keys. `off`: no checks, accepted only when the "
        "server listens on a loopback address.",
    )
    patient_index: Literal["on", "off"] = Field(
        default="on",
        description="The patient index: every Patient write links the record to its Person "
        "(docs/mpi.md). 'off' only to measure what it costs; Person resources then go stale.",
    )
    audit: Literal["on", "off"] = Field(
        default="on",
        description="An AuditEvent for every interaction (docs/auth.md, Audit): a write's in "
        "its own transaction, reads and refusals buffered and stored in batches. 'off' only to "
        "measure what it costs.",
    )
    audit_flush_every: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Buffered AuditEvents (reads, searches, refusals) stored together once "
        "this many are waiting.",
    )
    audit_flush_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds a buffered AuditEvent waits at most before it is stored; a crash "
        "loses what waited (writes are audited in their own transaction, never buffered).",
    )
    auth_signing_keys: str | None = Field(
        default=None,
        description="Keys that sign access tokens: a JSON Web Key Set (private RSA, EC or OKP "
        "keys, each with a unique `kid`), inline or as the path of a file holding it. The first "
        "key signs; all of them verify, so a new key goes first and the old one stays listed "
        "until its tokens have expired. No default: with auth on, the server refuses to start "
        "without it.",
    )
    auth_issuer: str | None = Field(
        default=None,
        description="The `iss` of fhirhub's access tokens; the base URL of `/auth` when unset.",
    )
    auth_token_lifetime: int = Field(
        default=300, ge=1, le=3600, description="Seconds an access token is valid."
    )
    auth_clock_leeway: int = Field(
        default=30,
        ge=0,
        le=300,
        description="Seconds of clock difference tolerated when checking `exp`.",
    )
    auth_rate_limit: float = Field(
        default=50.0,
        ge=0,
        description="Requests a second each client may make on average (429 with Retry-After "
        "past it, per server process); 0 for no limit.",
    )
    auth_rate_burst: int = Field(
        default=200, ge=1, description="Requests a client may make at once above the rate."
    )
    base_url: str | None = Field(
        default=None,
        description="Public base URL of the FHIR endpoint; derived from the request when unset.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, description="Largest request body accepted (413 above)."
    )
    default_page_size: int = Field(default=50, description="Search page size without `_count`.")
    max_page_size: int = Field(default=1000, description="Largest `_count` honoured.")
    db_pool_size: int = Field(
        default=10, description="Database connections kept per server process."
    )
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
    measure_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds an `$evaluate-measure` may read the database before it is "
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
    auto_migrate: bool | None = Field(
        default=None,
        description="Migrate the database when a command starts (serve, load, inbox) instead of "
        "refusing an old schema; unset: yes for SQLite, no for PostgreSQL (`fhirhub migrate`).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (`redis://…`, `amqp://…`); jobs run in process when unset.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    # Ingest and jobs (fhirhub.ingest, fhirhub.jobs)
    mappings_dir: Path = Field(
        default=_ROOT / "mappings", description="Per-source mapping tables (mappings/)."
    )
    terminology_dir: Path = Field(
        default=_ROOT / "terminology", description="ConceptMaps, region codes (terminology/)."
    )
    measures_dir: Path = Field(
        default=_ROOT / "measures",
        description="Indicator Measures, their views and reference tables (measures/).",
    )
    views_dir: Path = Field(
        default=_ROOT / "measures" / "views",
        description="The ViewDefinitions `$viewdefinition-run` finds by id (`<id>.json`).",
    )
    views_refresh_interval: int = Field(
        default=0,
        ge=0,
        description="Seconds between beat's refreshes of the materialised views; 0: none.",
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
    # The SIMRS Khanza channel (adapters/rsud/khanza*.py, `fhirhub pull khanza`)
    khanza_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the RSUD's SIMRS Khanza database "
        "(`mysql+pymysql://user:password@host:3306/sik`), read only; beat pulls new visits from "
        "it when set.",
    )
    khanza_pull_interval: float = Field(
        default=900.0, gt=0, description="Seconds between beat's pulls from SIMRS Khanza."
    )
    khanza_lookback_days: int = Field(
        default=7,
        ge=0,
        le=366,
        description="Days before the watermark a Khanza pull reads again, for diagnoses and "
        "procedures entered after a visit was first pulled (unchanged visits are not stored "
        "again).",
    )
    mllp_max_frame_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest HL7 v2 message the MLLP listener takes (a larger one is answered AR).",
    )
    mllp_idle_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Seconds an MLLP connection may stay silent before the listener closes it.",
    )

    @property
    def migrates_itself(self) -> bool:
        """Whether commands bring the database to the newest schema themselves."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """The README's table of settings, from :class:`Settings` (``scripts/settings_table.py``
    writes it between the ``<!-- settings -->`` markers; a test keeps the two equal)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "shown_default" in extra:
            shown = str(extra["shown_default"])
        elif info.default is None:
            shown = "unset"
        elif isinstance(info.default, Path):
            shown = f"`{info.default.relative_to(_ROOT)}/`"
        else:
            shown = f"`{info.default}`"
        env = f"FHIRHUB_{name.upper()}"
        meaning = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{env}` | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"
