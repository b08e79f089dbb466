"""The periodic indicator jobs: last month's reports kept, the surveillance alerts of the year so
far, both scheduled in beat."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from fhirhub.search.tables import resources
from fhirhub.services.load import load_bundles
from fhirhub.services.measures import stored

MEASURES = Path(__file__).parents[2] / "measures"


def test_periods() -> None:
    assert stored.last_month(date(2026, 1, 2)) == [
        ("periodStart", "2025-12"),
        ("periodEnd", "2025-12"),
    ]
    assert stored.last_month(date(2025, 3, 31)) == [
        ("periodStart", "2025-02"),
        ("periodEnd", "2025-02"),
    ]
    assert stored.year_to_date(date(2025, 2, 16)) == [
        ("periodStart", "2025-01-01"),
        ("periodEnd", "2025-02-16"),
    ]


def _count(engine: Engine, res_type: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    resources.c.res_type == res_type, resources.c.deleted.is_(False)
                )
            ).scalar_one()
        )


def test_a_month_kept_and_the_week_s_alerts(engine: Engine) -> None:
    entries = [
        {
            "resource": {
                "resourceType": "Encounter",
                "id": f"d{i}",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "period": {"start": f"2025-02-1{i}T10:00:00+08:00"},
                "reasonCode": [
                    {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A90"}]}
                ],
                "serviceProvider": {"reference": "Organization/org-pkm02"},
            },
            "request": {"method": "PUT", "url": f"Encounter/d{i}"},
        }
        for i in range(3)
    ]
    assert (
        load_bundles(
            engine, [{"resourceType": "Bundle", "type": "transaction", "entry": entries}]
        ).rejected
        == 0
    )
    month = stored.run(engine, MEASURES, stored.last_month(date(2025, 3, 1)), keep_alerts=False)
    assert month == {"reports": 22, "reports_stored": 22}
    assert _count(engine, "MeasureReport") == 22
    week = stored.run(
        engine,
        MEASURES,
        stored.year_to_date(date(2025, 2, 16)),
        ["surv-01", "surv-02"],
        keep_reports=False,
    )
    assert week == {"reports": 2, "alerts": 1, "alerts_stored": 1}
    assert _count(engine, "Communication") == 1


def test_beat_schedules_them() -> None:
    pytest.importorskip("celery")
    from fhirhub.jobs import tasks
    from fhirhub.jobs.celery_app import celery_app

    tasks_named = {e["task"] for e in celery_app.conf.beat_schedule.values()}
    assert {tasks.TASK_MEASURES_MONTHLY, tasks.TASK_SURVEILLANCE_WEEKLY} <= tasks_named
