"""A property test over interleaved writes, updates, deletes, manual links and unlinks: after
every committed unit of work, every Patient belongs to exactly one Person (issue 11)."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpi_invariants import check

from fhirhub.errors import FhirError
from fhirhub.services.patient_index import PatientIndex
from fhirhub.services.writes import Writer
from fhirhub.storage.engine import make_engine
from fhirhub.storage.repository import ResourceRepository

NIK = "https://fhir.kemkes.go.id/id/nik"
MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/"
# Records of three citizens, two of them with a typo or a missing identifier.
TEMPLATES = [
    ("7472014501900001", "Wa Ode Sitti", "1990-01-05"),
    ("7472014501900001", "Waode Siti", "1990-01-05"),
    (None, "Wa Ode Sitti", "1990-01-05"),
    ("7472024501900007", "Wa Ode Sitti", "1990-01-05"),
    ("7472011203850002", "La Ode Hasan", "1985-03-12"),
    ("7472011203850002", "La Ode Hasan", "1985-12-03"),
]
IDS = [f"p{i}" for i in range(5)]

operation = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(IDS), st.integers(0, len(TEMPLATES) - 1)),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("link"), st.sampled_from(IDS), st.sampled_from(IDS)),
    st.tuples(st.just("unlink"), st.sampled_from(IDS)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from(IDS),
              st.integers(0, len(TEMPLATES) - 1)), min_size=2, max_size=4)),
)  # fmt: skip


def body(pid: str, template: int) -> dict:
    nik, name, born = TEMPLATES[template]
    ids = [{"system": MRN + "clinic", "value": pid}]
    if nik:
        ids.append({"system": NIK, "value": nik})
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": ids,
        "name": [{"text": name}],
        "gender": "female" if "Wa" in name else "male",
        "birthDate": born,
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, min_size=1, max_size=12))
def test_every_patient_has_one_person_after_every_step(
    tmp_path: Path, sqlite_template: Path, ops: list
) -> None:
    path = tmp_path / "interleaved.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    index = PatientIndex()
    try:
        for op in ops:
            try:
                with engine.begin() as conn:
                    w = Writer(ResourceRepository(conn), patient_index=index)
                    if op[0] == "put":
                        w.update("Patient", op[1], body(op[1], op[2]))
                    elif op[0] == "delete":
                        w.delete("Patient", op[1])
                    elif op[0] == "link":
                        w.flush()
                        index.link(w, op[1], op[2], "steward", "test")
                    elif op[0] == "unlink":
                        w.flush()
                        index.unlink(w, op[1], "steward", "test")
                    else:
                        for pid, template in op[1]:
                            w.update("Patient", pid, body(pid, template))
                    w.flush()
            except FhirError as err:  # an unknown or lone record: refused, nothing changed
                assert err.status in (400, 404, 409), err
            with engine.connect() as conn:
                check(conn)
    finally:
        engine.dispose()
        path.unlink(missing_ok=True)
