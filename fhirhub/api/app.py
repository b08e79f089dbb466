"""The ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from fhirhub import __version__
from fhirhub.api import (
    admin_routes,
    auth_routes,
    errors,
    fhir_routes,
    ingest_routes,
    measure_routes,
    mpi_routes,
    ops_routes,
    views_routes,
)
from fhirhub.api.audit import AuditMiddleware
from fhirhub.api.authorize import Decisions, RateLimiter, authorize
from fhirhub.api.deidentify import DeidentifyMiddleware
from fhirhub.api.deps import Database
from fhirhub.api.middleware import RequestMiddleware, hide_query_in_access_log
from fhirhub.config import Settings, get_settings
from fhirhub.services.audit_buffer import AuditBuffer
from fhirhub.storage.engine import make_engine, migrate


def create_app(settings: Settings | None = None, *, run_migrations: bool | None = None) -> FastAPI:
    """Build the app. The embedded SQLite default migrates itself; PostgreSQL is migrated by
    ``fhirhub migrate`` (or ``FHIRHUB_AUTO_MIGRATE``, or ``run_migrations=True``); ``/readyz``
    says when the schema is behind."""
    settings = settings or get_settings()
    if run_migrations is None:
        run_migrations = settings.migrates_itself
    if run_migrations:
        migrate(settings.database_url)
    app = FastAPI(
        lifespan=_lifespan,
        title="fhirhub",
        version=__version__,
        description="FHIR R4 health information exchange of Dinas Kesehatan Kota Baubau",
        dependencies=[Depends(authorize)],  # every route: the one place of authorisation
    )
    app.state.settings = settings
    app.state.database = Database(
        make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
        ),
        search_timeout=settings.search_timeout,
    )
    # Responses of 1 KiB or more go gzipped to clients that accept it (a searchset Bundle of
    # 50 Patients shrinks about tenfold: much of a slow Puskesmas link).
    app.add_middleware(DeidentifyMiddleware)  # an analyst's answers: no direct identifiers
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    # An AuditEvent for every interaction (docs/auth.md, Audit); inside the request id's layer.
    app.add_middleware(AuditMiddleware)
    app.state.audit_buffer = (
        AuditBuffer(
            app.state.database.engine,
            every=settings.audit_flush_every,
            interval=settings.audit_flush_interval,
        )
        if settings.audit == "on"
        else None
    )
    # Outermost: the request id, security headers, and the last catch of unexpected errors.
    app.add_middleware(RequestMiddleware)
    hide_query_in_access_log()
    errors.install(app)
    _install_auth(app, settings)
    app.include_router(auth_routes.router)  # before /fhir/{type}/{id} takes /fhir/.well-known
    app.include_router(mpi_routes.router)
    app.include_router(measure_routes.router)  # before fhir_routes' /{type}/{id}/{compartment}
    app.include_router(views_routes.router)  # before /fhir/{res_type}/{res_id}
    app.include_router(fhir_routes.router)
    _install_ingest(app, settings)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _install_auth(app: FastAPI, settings: Settings) -> None:
    """With ``FHIRHUB_AUTH=on``, the authorisation server; raises AuthConfigError (the app does
    not start) without usable signing keys. With it off, nothing is checked."""
    app.state.auth = None
    app.state.rate_limiter = None
    app.state.decisions = Decisions()
    if settings.auth != "on":
        return
    from fhirhub.auth.clients import ClientStore, DatabaseReplayCache
    from fhirhub.auth.server import AuthServer
    from fhirhub.auth.tokens import load_signing_keys

    engine = app.state.database.engine
    keys = load_signing_keys(settings)
    app.state.auth = AuthServer(keys, ClientStore(engine), DatabaseReplayCache(engine), settings)
    if settings.auth_rate_limit > 0:
        app.state.rate_limiter = RateLimiter(settings.auth_rate_limit, settings.auth_rate_burst)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With no broker the server sweeps its inbox itself; a graceful stop (SIGTERM) first
    processes every message it accepted and queued here."""
    from starlette.concurrency import run_in_threadpool

    app.state.ingest.start()
    try:
        yield
    finally:
        await run_in_threadpool(app.state.ingest.stop)
        if app.state.audit_buffer is not None:  # what waits is stored before the stop
            await run_in_threadpool(app.state.audit_buffer.stop)


def _install_ingest(app: FastAPI, settings: Settings) -> None:
    """The ingest pipeline, the inbox admin API and the operations endpoints."""
    from fhirhub.ingest.service import IngestService

    service = IngestService.from_settings(app.state.database.engine, settings, background=True)
    app.state.ingest = service
    app.state.metrics_registry = ops_routes.metrics_registry(
        service, settings.broker_url, settings.broker_visibility_timeout
    )
    app.include_router(ingest_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(ops_routes.router)
