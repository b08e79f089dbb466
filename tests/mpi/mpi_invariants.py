"""What must hold of the patient index whenever a reader looks (issue 11)."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import Connection, text


def check(conn: Connection) -> dict[str, set[str]]:
    """Every current Patient belongs to exactly one Person, and the Person resources say so:
    each current Person links exactly its records, no Patient is linked twice, no Person is
    empty. Returns person id -> its Patient ids."""
    patients = set(
        conn.execute(
            text("SELECT res_id FROM resources WHERE res_type = 'Patient' AND NOT deleted")
        ).scalars()
    )
    members: dict[str, set[str]] = {}
    for pid, person in conn.execute(text("SELECT patient_id, person_id FROM mpi_records")):
        members.setdefault(person, set()).add(pid)
    recorded = Counter(p for ps in members.values() for p in ps)
    assert set(recorded) == patients, set(recorded) ^ patients
    assert all(n == 1 for n in recorded.values())
    persons: dict[str, set[str]] = {}
    rows = conn.execute(
        text("SELECT res_id, content FROM resources WHERE res_type = 'Person' AND NOT deleted")
    )
    for person_id, content in rows:
        body = content if isinstance(content, dict) else json.loads(content)
        links = [x["target"]["reference"].split("/", 1)[1] for x in body.get("link", [])]
        assert links, f"Person/{person_id} has no links"
        assert len(links) == len(set(links))
        persons[person_id] = set(links)
    assert persons == members
    linked = Counter(p for ps in persons.values() for p in ps)
    assert all(n == 1 for n in linked.values())
    return persons
