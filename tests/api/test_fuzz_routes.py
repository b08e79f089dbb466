"""Hypothesis sends every family of routes inputs of every shape (NUL characters, non-ASCII
digits, numbers of thousands of digits, deep or odd JSON, odd headers): the answer is never a
5xx, and every 4xx is an OperationOutcome. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from factories import patient
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

H = {"content-type": "application/fhir+json"}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text that has broken servers: NUL, non-ASCII digits, long digit runs, escapes, separators.
tricky = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "²",
        "٣",
        "9" * 25,
        "9" * 5000,
        "-" + "9" * 20,
        "1e400",
        "-1e400",
        "nan",
        'W/"1"',
        "%00",
        "\\",
        "|",
        ",",
        "$",
        "..",
        "",
        " ",
        "eq",
        "ap1e308",
        "gt2020-13-45",
        "Patient/",
        "_history",
    ]
)
texts = st.one_of(tricky, st.text(max_size=30), st.from_regex(r"[0-9]{1,30}", fullmatch=True))
names = st.one_of(
    st.sampled_from(
        [
            "_count",
            "_page",
            "_cursor",
            "_sort",
            "_include",
            "_revinclude",
            "_since",
            "_at",
            "_id",
            "_lastUpdated",
            "_summary",
            "_elements",
            "_total",
            "_type",
            "family",
            "identifier",
            "birthdate",
            "value-quantity",
            "subject",
            "subject:Patient.name",
            "_has:Observation:subject:code",
            "code:text",
            "probability",
        ]
    ),
    texts,
)
types = st.sampled_from(["Patient", "Observation", "RiskAssessment", "metadata", "Nope", ""])
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        texts,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


def acceptable(r: Any) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url)[:200], r.text[:300])
    if r.status_code >= 400 and r.request.method != "HEAD":
        assert r.json()["resourceType"] == "OperationOutcome", r.text[:300]


def url(path: str, params: list[tuple[str, str]]) -> str:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    return f"{path}?{query}" if query else path


@FUZZ
@given(res_type=types, params=st.lists(st.tuples(names, texts), max_size=4))
def test_search_and_history(client: TestClient, res_type: str, params: list[Any]) -> None:
    for path in (f"/fhir/{res_type}", f"/fhir/{res_type}/_history", "/fhir", "/fhir/_history"):
        acceptable(client.get(url(path, params)))
    acceptable(client.post(f"/fhir/{res_type}/_search", content=url("", params)[1:]))


@FUZZ
@given(
    res_type=types,
    res_id=texts,
    version=texts,
    etag=texts,
    method=st.sampled_from(["GET", "HEAD", "DELETE"]),
)
def test_instance_reads_and_deletes(
    client: TestClient, res_type: str, res_id: str, version: str, etag: str, method: str
) -> None:
    rid, ver = quote(res_id, safe=""), quote(version, safe="")
    headers = {"If-None-Match": etag.encode(), "If-Match": etag.encode()}
    for path in (f"/fhir/{res_type}/{rid}", f"/fhir/{res_type}/{rid}/_history/{ver}"):
        acceptable(client.request(method, path, headers=headers))
    acceptable(client.get(f"/fhir/{res_type}/{rid}/_history"))
    acceptable(client.get(f"/fhir/Patient/{rid}/{quote(version, safe='')}"))


@FUZZ
@given(extra=st.dictionaries(texts, json_values, max_size=4), etag=texts, cond=texts)
def test_writes(client: TestClient, extra: dict[str, Any], etag: str, cond: str) -> None:
    body = json.dumps({**patient(), **extra})
    headers = {**H, "If-Match": etag.encode(), "If-None-Exist": cond.encode()}
    acceptable(client.post("/fhir/Patient", content=body, headers=headers))
    acceptable(client.put("/fhir/Patient/fuzz", content=body, headers=headers))
    acceptable(client.put(url("/fhir/Patient", [("identifier", cond)]), content=body, headers=H))
    acceptable(client.delete(url("/fhir/Patient", [("identifier", cond)])))
    patch = json.dumps([{"op": "add", "path": "/extra", "value": extra}])
    acceptable(
        client.patch(
            "/fhir/Patient/fuzz",
            content=patch,
            headers={"content-type": "application/json-patch+json", "If-Match": etag.encode()},
        )
    )


entries = st.fixed_dictionaries(
    {},
    optional={
        "fullUrl": json_values,
        "resource": st.one_of(json_values, st.just(patient())),
        "request": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "method": st.one_of(
                        st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), json_values
                    )
                },
                optional={
                    "url": st.one_of(texts, st.just("Patient"), json_values),
                    "ifNoneExist": json_values,
                    "ifMatch": json_values,
                    "ifNoneMatch": json_values,
                },
            ),
        ),
    },
)


@FUZZ
@given(
    kind=st.sampled_from(["transaction", "batch", "collection", 7]),
    items=st.lists(entries, max_size=4),
)
def test_transactions_and_batches(client: TestClient, kind: Any, items: list[Any]) -> None:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": items}
    acceptable(client.post("/fhir", content=json.dumps(bundle), headers=H))


@FUZZ
@given(data=st.one_of(texts, st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())))
def test_transaction_patch_binaries(client: TestClient, data: str) -> None:
    entry = {
        "resource": {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": data,
        },
        "request": {"method": "PATCH", "url": "Patient/fuzz"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    acceptable(client.post("/fhir", content=json.dumps(bundle), headers=H))


@FUZZ
@given(
    source=texts,
    payload=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
    ctype=texts,
    mode=st.sampled_from(["async", "sync", "x"]),
    message_id=texts,
)
def test_ingest_and_admin(
    client: TestClient, source: str, payload: bytes, ctype: str, mode: str, message_id: str
) -> None:
    headers = {"content-type": ctype.encode()}
    for name in (source, "puskesmas"):
        acceptable(
            client.post(
                url(f"/ingest/{quote(name, safe='')}", [("mode", mode)]),
                content=payload,
                headers=headers,
            )
        )
    mid = quote(message_id, safe="")
    for path in (f"/ingest/status/{mid}", f"/admin/inbox/{mid}", f"/admin/inbox/{mid}/payload"):
        acceptable(client.get(path))
    acceptable(client.post(f"/admin/inbox/{mid}/replay"))
    acceptable(
        client.get(
            url(
                "/admin/inbox",
                [("after", message_id), ("limit", message_id), ("status", message_id)],
            )
        )
    )
