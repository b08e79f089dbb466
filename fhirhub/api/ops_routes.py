"""Operations: ``/readyz`` (database and broker) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fhirhub.api.ingest_routes import ingest_service, json_response
from fhirhub.ingest.queue import broker_ready, queue_depth
from fhirhub.ingest.service import IngestService
from fhirhub.storage.engine import SchemaCheck

router = APIRouter(include_in_schema=False)


def _database_ready(service: IngestService) -> bool:
    try:
        with service.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _schema_check(request: Request, service: IngestService) -> SchemaCheck:
    # One per app, remembered: at head it is never read again (see SchemaCheck).
    check: SchemaCheck | None = getattr(request.app.state, "schema_check", None)
    if check is None:
        check = request.app.state.schema_check = SchemaCheck(service.engine)
    return check


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    service = ingest_service(request)
    settings = request.app.state.settings
    checks = {"database": "ok" if await run_in_threadpool(_database_ready, service) else "down"}
    reasons: dict[str, str] = {}
    if checks["database"] == "ok":
        problem = await run_in_threadpool(_schema_check(request, service).problem)
        checks["schema"] = "ok" if problem is None else "behind"
        if problem is not None:
            reasons["schema"] = problem
    if settings.broker_url:
        up = await run_in_threadpool(
            broker_ready, settings.broker_url, settings.broker_visibility_timeout
        )
        checks["broker"] = "ok" if up else "down"
    else:
        checks["broker"] = "in-process"
    ready = all(v in ("ok", "in-process") for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    return json_response(body, status_code=200 if ready else 503)


class InboxCollector(Collector):
    """Totals from the inbox table (every process's work) and the broker's queue depth."""

    def __init__(self, service: IngestService, broker_url: str | None, visibility: int) -> None:
        self.service = service
        self.queue = service.dispatcher.queue
        self.broker_url = broker_url
        self.visibility = visibility

    def collect(self) -> Iterator[GaugeMetricFamily]:
        messages = GaugeMetricFamily(
            "fhirhub_inbox_messages",
            "Inbox messages by source and status",
            labels=["source", "status"],
        )
        try:
            for source, status, n in self.service.counts():
                messages.add_metric([source, status], n)
        except Exception:
            pass
        yield messages
        depth = queue_depth(self.broker_url, self.visibility, self.queue)
        queue = GaugeMetricFamily("fhirhub_ingest_queue_depth", "Tasks waiting on the broker")
        queue.add_metric([], depth if depth is not None else 0)
        yield queue


def metrics_registry(
    service: IngestService, broker_url: str | None, visibility: int
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InboxCollector(service, broker_url, visibility))
    return registry


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = await run_in_threadpool(lambda: generate_latest(REGISTRY) + generate_latest(registry))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
