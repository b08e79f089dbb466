"""What must hold of the patient index whenever a reader looks (issue 11)."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import Connection, text

from fhirhub.mpi.features import decode, extract


def check(conn: Connection) -> dict[str, set[str]]:
    """Every current Patient belongs to exactly one Person, and the Person resources say so:
    each current Person links exactly its records, no Patient is linked twice, no Person is
    empty; and the features stored with each record are those of its current version. Returns
    person id -> its Patient ids."""
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
    stored = conn.execute(
        text(
            "SELECT m.patient_id, m.features, m.features_at, r.last_updated, r.content "
            "FROM mpi_records AS m JOIN resources AS r ON r.res_type = 'Patient' "
            "AND r.res_id = m.patient_id AND NOT r.deleted"
        )
    )
    for pid, features, at, updated, content in stored:
        assert at == updated, f"Patient/{pid}: features of another version stored"
        body = content if isinstance(content, dict) else json.loads(content)
        assert decode(features) == extract(body), f"Patient/{pid}: wrong features stored"
    return persons
