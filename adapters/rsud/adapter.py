"""An HL7 v2 message (or batch) from a hospital in, the canonical transaction Bundle out.

What each message type becomes is the message map (``mappings/rsud/messages.yaml``):

- ADT A01/A02/A03/A04/A05/A08/A11/A13 -> Patient (a conditional update on the hospital's record
  number, PID-3), Encounter (PV1; its id derived from the visit number PV1-19, its status from
  the event, its status and location history), RelatedPerson (NK1), Condition (DG1),
  Procedure (PR1), AllergyIntolerance (AL1), Coverage (an IN1 of BPJS);
- ADT A28/A31 -> Patient (and RelatedPerson, AllergyIntolerance);
- the OBX segments of an ADT event (A01/A03/A04/A05/A08/A13/A28/A31) -> Observations of the
  visit (vital signs in their category);
- ADT A40 -> a merge instruction for the patient index (:func:`merge_parameters`), see below;
- ORU R01 -> DiagnosticReport (OBR) and Observation (OBX, with the comments of the NTEs
  after it), Specimen (SPM), the Patient created if new;
- VXU V04 -> Immunization (RXA, with the route and site of the RXR after it, and the
  eligibility, funding and information statements of the OBX after it), the Patient created if
  new.

Problems in a message are collected, each with the HL7 location of the field (``PID[1]-3``)
as its expression; the MLLP listener turns them into the ERR segments of its ``AE``. A message
that is not HL7 v2, of a version or type not mapped here, is refused with ``not-supported`` or
``structure`` (``AR``).

The inbox recognises a message sent again by its sending facility and control id (MSH-4 and
MSH-10, :meth:`RsudAdapter.message_key`), not by its bytes: a sender that resends on a timeout
writes a new MSH-7 but keeps MSH-10.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from adapters.rsud.hl7 import Hl7Error, Parsed, Segment, parse_payload
from adapters.rsud.hl7map import (
    ALLERGY_CLINICAL,
    CATEGORY_OBS,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    ENCOUNTER_SYSTEM,
    MERGE,
    UCUM,
    V2_0203,
    Mapper,
    derived_id,
    dtm,
    encounter_id,
    number,
    reference_range,
)
from adapters.rsud.mapping import Mappings, load_mappings
from fhirhub.errors import FhirError, Issue
from fhirhub.ingest import Context, Mapped, Merge, Message
from fhirhub.ingest.canonical import BPJS_CARD, bpjs_card
from fhirhub.ingest.visits import bpjs_coverage_entry, put_entry

MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "application/edi-hl7")


class RsudAdapter:
    name = "rsud"
    media_types = MEDIA_TYPES  # the MLLP listener finds the adapter that speaks HL7 v2 by these
    # A visit Khanza describes too is merged (fhirhub.ingest.visits); where both give a value,
    # the HL7 feed's, written as the visit goes on, is preferred to the database's row.
    visit_priority = 2

    def claims(self, bundle: dict[str, Any], context: Context) -> bool:
        return False  # a hospital sends HL7 v2, never a FHIR Bundle

    def message_key(self, payload: bytes) -> str | None:
        """``<sending facility>|<MSH-10>|<content>``: the inbox's key for this message, or None.

        A resend (on a timeout, after a restart) keeps MSH-10 and its content but often writes
        a new MSH-7 and other line ends: it is the same message. A sender that reuses a control
        id for other content (counters reset daily happen) sends another message, which is
        kept and stored, not taken for a duplicate and lost: the content part is a digest of
        the message without MSH-7, whatever its line ends."""
        header = read_header(payload)
        if header is None or not header[0] or not header[1]:
            return None
        return f"hl7v2|{header[0].upper()}|{header[1]}|{_content_digest(payload)}"

    def map(self, message: Message, context: Context) -> Mapped:
        mappings = load_mappings(context.mappings_dir / "rsud")
        read = frozenset(mappings.segments) | {"EVN", "PID", "PV1", "MRG", "OBX", "NTE", "IN1"}
        parsed_messages = parse_payload(message.payload, read)
        entries: list[dict[str, Any]] = []
        issues: list[Issue] = []
        merges: list[Merge] = []
        facility = None
        for parsed in parsed_messages:
            fac = mappings.facility(parsed.sending_facility)
            if fac is None:
                raise FhirError(
                    422,
                    [
                        Issue(
                            "not-found",
                            f"No mapping table for sending facility "
                            f"'{parsed.sending_facility[:40]}' (mappings/rsud/facilities.yaml)",
                            ("MSH[1]-4",),
                        )
                    ],
                )
            facility = facility or fac
            kind = f"{parsed.message_type}^{parsed.trigger}"
            spec = mappings.messages.get(kind)
            if spec is None:
                raise Hl7Error(
                    422,
                    [
                        Issue(
                            "not-supported",
                            f"Message type {kind[:20]} is not mapped",
                            ("MSH[1]-9",),
                        )
                    ],
                )
            mapper = Mapper(mappings, fac, context.concept_maps, parsed)
            entries.extend(_message(mapper, parsed, spec))
            issues.extend(mapper.issues)
            merges.extend(mapper.merges)
        if issues:
            raise FhirError(422, issues)
        assert facility is not None
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": _last_wins(entries)}
        return Mapped(
            bundle=bundle,
            sender=facility.code,
            organization=facility.organization,
            merges=merges,
        )


def read_header(payload: bytes) -> tuple[str, str] | None:
    """(MSH-4 first component, MSH-10) of the first message, read without parsing it all."""
    head = payload[:4096].lstrip(b"\xef\xbb\xbf\r\n\t \x0b")
    start = head.find(b"MSH")
    if start < 0 or len(head) < start + 8:
        return None
    sep = head[start + 3 : start + 4]
    line = head[start:].split(b"\r", 1)[0].split(b"\n", 1)[0]
    fields = line.split(sep)
    comp = fields[1][:1] if len(fields) > 1 and fields[1] else b"^"
    if len(fields) < 10:
        return None
    facility = fields[3].split(comp)[0].decode("utf-8", "replace").strip()
    control = fields[9].decode("utf-8", "replace").strip()
    return facility, control


def _content_digest(payload: bytes) -> str:
    raw = payload.removeprefix(b"\xef\xbb\xbf")
    lines = [line.strip() for line in re.split(rb"\r\n|\r|\n", raw) if line.strip()]
    for k, line in enumerate(lines):
        if line.startswith(b"MSH") and len(line) > 4:
            fields = line.split(line[3:4])
            if len(fields) > 6:
                fields[6] = b""  # MSH-7, the time of sending
            lines[k] = line[3:4].join(fields)
    return hashlib.sha256(b"\r".join(lines)).hexdigest()[:32]


# --- one message -----------------------------------------------------------------------------


def _message(mapper: Mapper, parsed: Parsed, spec: dict[str, Any]) -> list[dict[str, Any]]:
    fac = mapper.facility
    entries: list[dict[str, Any]] = []
    pid = parsed.first("PID")
    if pid is None:
        mapper.issue("required", "The message has no PID segment", "PID")
        return []
    patient = mapper.apply(pid, {"resourceType": "Patient"})
    mrn = next(
        (i for i in patient.get("identifier", []) if i.get("system") == fac.mrn_system), None
    )
    if mrn is None:
        mapper.issue(
            "required",
            f"PID-3 carries no record number of {fac.code} (type MR, authority one of "
            f"{sorted(fac.mrn_authorities)} or none)",
            pid.where(3),
        )
        return []
    patient["managingOrganization"] = {"reference": fac.organization}
    patient_key = f"{fac.mrn_system}|{mrn['value']}"
    patient_url = f"urn:uuid:{derived_id(patient_key, 'Patient')}"
    query = f"identifier={quote(fac.mrn_system, safe=':/')}|{quote(mrn['value'], safe='')}"
    if spec.get("patient") == "update":
        request = {"method": "PUT", "url": f"Patient?{query}"}
    else:
        request = {"method": "POST", "url": "Patient", "ifNoneExist": query}
    entries.append({"fullUrl": patient_url, "resource": patient, "request": request})
    subject = {"reference": patient_url}

    if spec.get("merge"):
        params = merge_parameters(mapper, parsed, patient)
        if params is not None:
            mapper.merges.extend(merges_of(params, mapper.parsed.first("MRG")))
        return entries

    # --- the visit ---
    encounter_ref: dict[str, str] | None = None
    visit_key: str | None = None
    pv1 = parsed.first("PV1")
    mode = spec.get("encounter")
    visit = pv1.get(19) if pv1 is not None else ""
    if mode and visit:
        system = ENCOUNTER_SYSTEM + fac.satusehat_organization_id
        visit_key = f"{system}|{visit}"
        enc_id = encounter_id(system, visit)
        encounter_ref = {"reference": f"Encounter/{enc_id}"}
    if mode and mode != "reference":
        if pv1 is None or not visit:
            mapper.issue(
                "required",
                "The visit number (PV1-19) is required for this event",
                pv1.where(19) if pv1 is not None else "PV1",
            )
        else:
            assert visit_key is not None and encounter_ref is not None
            entries.append(_encounter(mapper, parsed, pv1, mode, visit_key, subject))
    if spec.get("related"):
        for n, nk1 in enumerate(parsed.all("NK1")):
            person = mapper.apply(nk1, {"resourceType": "RelatedPerson"})
            if len(person) == 1:
                continue
            person["patient"] = subject
            rid = derived_id(patient_key, "RelatedPerson", str(n))
            person["id"] = rid
            entries.append(put_entry(person))
    if spec.get("conditions") and visit_key and encounter_ref:
        entries.extend(_conditions(mapper, parsed, visit_key, subject, encounter_ref, entries))
    if spec.get("procedures") and visit_key and encounter_ref:
        entries.extend(_procedures(mapper, parsed, visit_key, subject, encounter_ref))
    if spec.get("allergies"):
        entries.extend(_allergies(mapper, parsed, patient_key, subject))
    if spec.get("coverage"):
        entries.extend(_coverage(parsed, subject, patient))
    if spec.get("observations"):
        entries.extend(
            _event_observations(mapper, parsed, patient_key, visit_key, subject, encounter_ref)
        )
    if spec.get("results"):
        entries.extend(_results(mapper, parsed, patient_key, visit_key, subject, encounter_ref))
    if spec.get("vaccinations"):
        entries.extend(_vaccinations(mapper, parsed, patient_key, subject, encounter_ref))
    return entries


def _encounter(
    mapper: Mapper,
    parsed: Parsed,
    pv1: Segment,
    mode: str,
    visit_key: str,
    subject: dict[str, str],
) -> dict[str, Any]:
    fac = mapper.facility
    system, visit = visit_key.split("|", 1)
    enc_id = encounter_id(system, visit)
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": enc_id,
        "identifier": [{"system": system, "value": visit}],
    }
    mapper.apply(pv1, enc)
    enc.setdefault(
        "class",
        {
            "system": mapper.m.table("patient-class").system,
            **mapper.m.table("patient-class").default,
        },
    )
    period = enc.get("period", {})
    start, end = period.get("start"), period.get("end")
    if mode == "keep":
        state = "discharged" if end else "admitted" if start else "neither"
        status = str(mapper.m.table("encounter-status").lookup(state))
    else:
        status = mode
    if status in ("in-progress", "planned", "arrived") and end and mode != "keep":
        period.pop("end", None)  # a cancelled discharge, a transfer: the visit goes on
        end = None
    enc["status"] = status
    history: list[dict[str, Any]] = []
    if start:
        history.append({"status": "arrived", "period": {"start": start, "end": start}})
        if status in ("in-progress", "finished"):
            history.append(
                {
                    "status": "in-progress",
                    "period": {"start": start, **({"end": end} if end else {})},
                }
            )
        if status == "finished" and end:
            history.append({"status": "finished", "period": {"start": end, "end": end}})
    if status == "cancelled":
        history.append(
            {"status": "cancelled", "period": {"start": _event_time(mapper, parsed) or start}}
        )
    history = [h for h in history if h["period"].get("start")]
    if history:
        enc["statusHistory"] = history
    locations = enc.pop("location", [])
    prior = [mapper.location(r) for r in pv1.reps(6)]
    when = _event_time(mapper, parsed)
    out_locations: list[dict[str, Any]] = []
    for loc in prior:
        if loc is not None and mode == "in-progress" and parsed.trigger == "A02":
            out_locations.append(
                {**loc, "status": "completed", **({"period": {"end": when}} if when else {})}
            )
    for loc in locations:
        state = "completed" if status in ("finished", "cancelled") else "active"
        period_loc = (
            {"start": when}
            if parsed.trigger == "A02" and when
            else ({"start": start} if start else {})
        )
        if status == "finished" and end:
            period_loc["end"] = end
        out_locations.append(
            {**loc, "status": state, **({"period": period_loc} if period_loc else {})}
        )
    if not out_locations and fac.location:
        out_locations.append({"location": {"reference": fac.location, "display": fac.name}})
    enc["location"] = out_locations
    enc["subject"] = subject
    enc["serviceProvider"] = {"reference": fac.organization, "display": fac.name}
    if enc.get("period") == {}:
        enc.pop("period")
    return put_entry(enc)


def _event_time(mapper: Mapper, parsed: Parsed) -> str | None:
    evn = parsed.first("EVN")
    if evn is None:
        return None
    for position in (6, 2):
        value = dtm(evn.get(position), mapper.facility.clock)
        if value:
            return value
    return None


def _conditions(
    mapper: Mapper,
    parsed: Parsed,
    visit_key: str,
    subject: dict[str, str],
    encounter_ref: dict[str, str],
    entries: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    diagnoses: list[dict[str, Any]] = []
    for n, dg1, condition in _coded(mapper, parsed, "DG1", "Condition", "the diagnosis code"):
        cid = derived_id(visit_key, "Condition", str(n))
        condition.update(
            {
                "id": cid,
                "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
                "category": [
                    {"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
                ],
                "subject": subject,
                "encounter": encounter_ref,
            }
        )
        out.append(put_entry(condition))
        use = mapper.table_concept("diagnosis-use", dg1.get(6) or "F")
        rank = dg1.get(15)
        diagnosis: dict[str, Any] = {"condition": {"reference": f"urn:uuid:{cid}"}}
        if use:
            diagnosis["use"] = use
        diagnosis["rank"] = int(rank) if rank.isdigit() and 0 < int(rank) < 1000 else n + 1
        diagnoses.append(diagnosis)
    if diagnoses:
        for entry in entries:
            if entry["resource"].get("resourceType") == "Encounter":
                entry["resource"]["diagnosis"] = diagnoses
    return out


def _coded(
    mapper: Mapper, parsed: Parsed, name: str, resource_type: str, what: str
) -> Iterator[tuple[int, Segment, dict[str, Any]]]:
    """Each ``name`` segment (DG1, PR1, AL1) mapped to a ``resource_type``, with its place
    among them; one whose code (field 3) is empty is an issue, and left out."""
    for n, seg in enumerate(parsed.all(name)):
        resource = mapper.apply(seg, {"resourceType": resource_type})
        if not resource.get("code"):
            mapper.issue("required", f"{name}-3 ({what}) is empty", seg.where(3))
            continue
        yield n, seg, resource


def _procedures(
    mapper: Mapper,
    parsed: Parsed,
    visit_key: str,
    subject: dict[str, str],
    encounter_ref: dict[str, str],
) -> list[dict[str, Any]]:
    """The visit's PR1 segments as Procedures, numbered in the order sent, as the Khanza channel
    numbers the visit's ``prosedur_pasien`` rows (the same ids)."""
    out: list[dict[str, Any]] = []
    for n, _, procedure in _coded(mapper, parsed, "PR1", "Procedure", "the procedure code"):
        pid = derived_id(visit_key, "Procedure", str(n))
        procedure.update(
            {"id": pid, "status": "completed", "subject": subject, "encounter": encounter_ref}
        )
        out.append(put_entry(procedure))
    return out


def _allergies(
    mapper: Mapper, parsed: Parsed, patient_key: str, subject: dict[str, str]
) -> list[dict[str, Any]]:
    """The AL1 segments as the patient's AllergyIntolerances, each under an id derived from
    the patient and the allergen, so that every message naming it again updates the one."""
    out: list[dict[str, Any]] = []
    for _, al1, allergy in _coded(mapper, parsed, "AL1", "AllergyIntolerance", "the allergen"):
        code = allergy["code"]
        reactions = [{"text": r.get(1)} for r in al1.reps(5) if r.get(1)]
        if reactions:
            allergy["reaction"] = [{"manifestation": reactions}]
        coding = (code.get("coding") or [{}])[0]
        allergen = f"{coding.get('system', '')}|{coding.get('code', '')}|{code.get('text', '')}"
        aid = derived_id(patient_key, "AllergyIntolerance", allergen)
        allergy.update(
            {
                "id": aid,
                "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
                "patient": subject,
            }
        )
        out.append(put_entry(allergy))
    return out


def _coverage(
    parsed: Parsed, subject: dict[str, str], patient: dict[str, Any]
) -> list[dict[str, Any]]:
    """The Coverage on the patient's BPJS card when an IN1 names BPJS (or JKN) as the insurer
    or the plan: the card from IN1-36 (policy number), else IN1-49 (insured's id), else the
    PID's BPJS identifier. The Khanza channel writes the same entry for the visit."""
    for in1 in parsed.all("IN1"):
        names = " ".join((in1.get(2), in1.get(2, 2), in1.get(3), in1.get(4))).upper()
        if "BPJS" not in names and "JKN" not in names:
            continue
        ids = {i.get("system"): i.get("value") for i in patient.get("identifier") or []}
        raw = in1.get(36) or in1.get(49) or ids.get(BPJS_CARD) or ""
        card = bpjs_card(raw) or raw.strip()
        if card:
            return [bpjs_coverage_entry(card, subject, in1.get(4) or "BPJS Kesehatan")]
    return []


# --- results ---------------------------------------------------------------------------------

_QUANTITY_TYPES = ("NM", "SN")
_CODED_TYPES = ("CE", "CWE", "CNE", "CF")
_TEXT_TYPES = ("ST", "TX", "FT", "IS", "ID", "")
_TIME_TYPES = ("DT", "TS", "DTM")


def _results(
    mapper: Mapper,
    parsed: Parsed,
    patient_key: str,
    visit_key: str | None,
    subject: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> list[dict[str, Any]]:
    """OBR/OBX groups, in the order sent: an OBX (or SPM) belongs to the OBR before it (an OBX
    before any OBR stands alone)."""
    groups: list[tuple[Segment | None, list[Segment], list[Segment]]] = []
    for seg in parsed.segments:
        if seg.name == "OBR":
            groups.append((seg, [], []))
        elif seg.name in ("OBX", "SPM"):
            if not groups:
                groups.append((None, [], []))
            (groups[-1][1] if seg.name == "OBX" else groups[-1][2]).append(seg)
    if not groups:
        mapper.issue("required", "The ORU has no OBR or OBX segment", "OBR")
    out: list[dict[str, Any]] = []
    base = visit_key or patient_key
    for g, (obr, obxs, spms) in enumerate(groups):
        order = (obr.get(3) or obr.get(2)) if obr is not None else ""
        order_key = f"{base}|order|{order or g}"
        specimens = [_specimen(mapper, spm, order_key, n, subject) for n, spm in enumerate(spms)]
        out.extend(specimens)
        observations: list[dict[str, Any]] = []
        report: dict[str, Any] | None = None
        if obr is not None:
            report = {"resourceType": "DiagnosticReport"}
            mapper.apply(obr, report)
            report.setdefault("status", "final")
            if "code" not in report:
                mapper.issue("required", "OBR-4 (the service) is empty", obr.where(4))
        for k, obx in enumerate(obxs):
            obs = _observation(mapper, parsed, obx, obr, report)
            if obs is None:
                continue
            set_id = obx.get(1) or str(k + 1)
            _of_visit(obs, derived_id(order_key, "Observation", set_id), subject, encounter_ref)
            if len(specimens) == 1:
                obs["specimen"] = {"reference": specimens[0]["fullUrl"]}
            observations.append(put_entry(obs))
        if report is not None:
            rid = derived_id(order_key, "DiagnosticReport")
            _of_visit(report, rid, subject, encounter_ref)
            if observations:
                report["result"] = [{"reference": o["fullUrl"]} for o in observations]
            if specimens:
                report["specimen"] = [{"reference": s["fullUrl"]} for s in specimens]
            report["performer"] = [
                {"reference": mapper.facility.organization, "display": mapper.facility.name}
            ]
            out.append(put_entry(report))
        out.extend(observations)
    return out


def _specimen(
    mapper: Mapper, spm: Segment, order_key: str, n: int, subject: dict[str, str]
) -> dict[str, Any]:
    """An SPM's Specimen, its id the order group's and the SPM's place in it; SPM-2's placer
    and filler ids (EIP: each an EI, its value and namespace as subcomponents) as identifiers."""
    specimen = mapper.apply(spm, {"resourceType": "Specimen"})
    identifiers = []
    for rep in spm.reps(2):
        for component, role in ((1, "PLAC"), (2, "FILL")):
            value = rep.get(component)
            if not value:
                continue
            authority = rep.get(component, 2) or rep.get(component, 3) or mapper.facility.code
            identifiers.append(
                {
                    "type": {"coding": [{"system": V2_0203, "code": role}]},
                    "system": f"urn:hl7v2:specimen:{authority.lower()}",
                    "value": value,
                }
            )
    if identifiers:
        specimen["identifier"] = identifiers
    specimen.update(
        {"id": derived_id(order_key, "Specimen", spm.get(1) or str(n + 1)), "subject": subject}
    )
    return put_entry(specimen)


# The LOINC codes of R4's vital signs profiles (http://hl7.org/fhir/R4/observation-vitalsigns.html):
# an Observation of one of them is in the vital-signs category.
_VITAL_SIGNS = frozenset(
    {
        "85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "8302-2", "9843-4",
        "29463-7", "39156-5", "85354-9", "8480-6", "8462-4", "8478-0",
    }
)  # fmt: skip


def _event_observations(
    mapper: Mapper,
    parsed: Parsed,
    patient_key: str,
    visit_key: str | None,
    subject: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> list[dict[str, Any]]:
    """The OBX segments of an ADT event (height, weight, blood pressure taken at admission):
    Observations of the visit (of the patient when there is none), as the v2-to-FHIR guide
    maps ADT's OBX. One Observation a visit and observed code (its n-th OBX of that code), so
    an update (A08) sent with the same OBX replaces it; taken when OBX-14 says, else at the
    event."""
    out: list[dict[str, Any]] = []
    base = f"{visit_key or patient_key}|event-observation"
    seen: dict[str, int] = {}
    when = _event_time(mapper, parsed)
    for obx in parsed.all("OBX"):
        obs = _observation(mapper, parsed, obx, None, None, category=None)
        if obs is None or not obs.get("code"):
            continue
        coding = (obs["code"].get("coding") or [{}])[0]
        code = f"{coding.get('system', '')}|{coding.get('code', obs['code'].get('text', ''))}"
        seen[code] = seen.get(code, 0) + 1
        if coding.get("system") == "http://loinc.org" and coding.get("code") in _VITAL_SIGNS:
            obs["category"] = [
                {
                    "coding": [
                        {"system": CATEGORY_OBS, "code": "vital-signs", "display": "Vital Signs"}
                    ]
                }
            ]
        if when and "effectiveDateTime" not in obs:
            obs["effectiveDateTime"] = when
        _of_visit(
            obs, derived_id(base, "Observation", f"{code}|{seen[code]}"), subject, encounter_ref
        )
        out.append(put_entry(obs))
    return out


def _of_visit(
    resource: dict[str, Any],
    rid: str,
    subject: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> None:
    """Give a result its id, its patient and its visit (where the message names one)."""
    resource.update({"id": rid, "subject": subject})
    if encounter_ref:
        resource["encounter"] = encounter_ref


def _notes(parsed: Parsed, obx: Segment) -> list[dict[str, str]]:
    """The comments (NTE-3, its repetitions as lines) of the NTE segments right after an OBX:
    the Observation's notes, as the v2-to-FHIR guide maps them."""
    notes: list[dict[str, str]] = []
    for seg in parsed.after(obx):
        if seg.name != "NTE":
            break
        lines = [rep.get(1) for rep in seg.reps(3)]
        if any(lines):
            notes.append({"text": "\n".join(lines)})
    return notes


def _observation(
    mapper: Mapper,
    parsed: Parsed,
    obx: Segment,
    obr: Segment | None,
    report: dict[str, Any] | None,
    category: str | None = "laboratory",
) -> dict[str, Any] | None:
    """An OBX's Observation (None for an embedded document: the ``report``'s presented form, or
    nothing where there is no report). ``category``: laboratory for an OBR's results, whose
    local codes wait for their translation (AE); None for an event's observations, which keep a
    local code as sent rather than hold up the admission they came with. The comments of the
    NTEs after the OBX are its notes."""
    obs: dict[str, Any] = {"resourceType": "Observation"}
    value_type = obx.get(2).upper()
    if value_type == "ED":  # an embedded document (a PDF report): the report's presented form
        rep = obx.reps(5)[0] if obx.reps(5) else None
        if rep is not None and report is not None:
            media = "/".join(x for x in (rep.get(2).lower(), rep.get(3).lower()) if x)
            data = _base64(rep.get(4), rep.get(5))
            if data is None:
                mapper.issue("value", "OBX-5 (ED) data does not match its encoding", obx.where(5))
                return None
            report.setdefault("presentedForm", []).append(
                {"contentType": media or "application/octet-stream", "data": data}
            )
        return None
    mapper.apply(obx, obs)
    code_reps = obx.reps(3)
    if not code_reps:
        mapper.issue("required", "OBX-3 (what was observed) is empty", obx.where(3))
        return None
    obs["code"] = mapper.concept(code_reps[0], obx.where(3), required=category is not None)
    obs.setdefault("status", "final")
    if category == "laboratory":
        obs["category"] = [
            {"coding": [{"system": CATEGORY_OBS, "code": "laboratory", "display": "Laboratory"}]}
        ]
    if "effectiveDateTime" not in obs and obr is not None:
        when = dtm(obr.get(7), mapper.facility.clock)
        if when:
            obs["effectiveDateTime"] = when
    reps = obx.reps(5)
    unit = _unit(obx)
    if reps:
        if value_type in _QUANTITY_TYPES or (
            value_type == "" and number(reps[0].get(1)) is not None
        ):
            value = _quantity_value(mapper, obx, reps[0], value_type, unit)
            if value:
                obs.update(value)
        elif value_type in _CODED_TYPES:
            concept = mapper.concept(reps[0], obx.where(5), required=False)
            if concept:
                obs["valueCodeableConcept"] = concept
        elif value_type in _TIME_TYPES:
            when = dtm(reps[0].get(1), mapper.facility.clock)
            if when is None:
                mapper.issue("value", f"'{reps[0].get(1)[:30]}' is not a date/time", obx.where(5))
            else:
                obs["valueDateTime"] = when
        elif value_type == "TM":
            obs["valueString"] = reps[0].get(1)
        else:  # ST, TX, FT and what a sender invented: kept as text
            obs["valueString"] = "\n".join(
                "^".join(s for s in (r.get(i) for i in range(1, len(r.components) + 1)) if s)
                for r in reps
            )
    elif obs["status"] not in ("cancelled", "entered-in-error", "registered"):
        obs["dataAbsentReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "unknown",
                }
            ]
        }
    ranges = [reference_range(r.get(1), unit) for r in obx.reps(7)]
    ranges = [r for r in ranges if r]
    if ranges:
        obs["referenceRange"] = ranges
    notes = _notes(parsed, obx)
    if notes:
        obs["note"] = notes
    return obs


def _unit(obx: Segment) -> dict[str, Any] | None:
    reps = obx.reps(6)
    if not reps:
        return None
    code, text, system = reps[0].get(1), reps[0].get(2), reps[0].get(3).upper()
    if not (code or text):
        return None
    unit: dict[str, Any] = {"unit": text or code}
    if system in ("UCUM", "ANS+", "ISO+", "") and code:
        unit["system"] = UCUM
        unit["code"] = code
    return unit


def _base64(encoding: str, data: str) -> str | None:
    """ED data (HL7 table 0299: Base64, Hex, A for ASCII text) as FHIR's base64Binary."""
    kind = encoding.strip().upper()
    try:
        if kind == "HEX":
            return base64.b64encode(bytes.fromhex(data)).decode()
        if kind == "A":
            return base64.b64encode(data.encode()).decode()
        return base64.b64encode(base64.b64decode(data, validate=True)).decode()
    except ValueError:  # binascii.Error is one
        return None


_COMPARATOR = re.compile(r"[<>]=?")  # before an NM value: see _quantity_value


def _quantity_value(
    mapper: Mapper, obx: Segment, rep: Any, value_type: str, unit: dict[str, Any] | None
) -> dict[str, Any] | None:
    if value_type == "SN":  # comparator^num1^separator^num2
        comparator, first, separator, second = rep.get(1), rep.get(2), rep.get(3), rep.get(4)
        a = number(first)
        if a is None:
            mapper.issue("value", "SN value without a number", obx.where(5, 2))
            return None
        if separator in ("-", "~") and number(second) is not None:
            low: dict[str, Any] = {"value": a, **(unit or {})}
            high: dict[str, Any] = {"value": number(second), **(unit or {})}
            return {"valueRange": {"low": low, "high": high}}
        if separator in (":", "/") and number(second) is not None:
            return {
                "valueRatio": {"numerator": {"value": a}, "denominator": {"value": number(second)}}
            }
        q: dict[str, Any] = {"value": a, **(unit or {})}
        if comparator in ("<", "<=", ">", ">="):
            q["comparator"] = comparator
        return {"valueQuantity": q}
    raw = rep.get(1)
    # "<5" in an NM field (a comparator belongs in SN, but laboratory systems write it here)
    comparator = _COMPARATOR.match(raw.strip())
    value = number(raw[comparator.end() :] if comparator else raw)
    if value is None:
        mapper.issue("value", f"'{raw[:30]}' is not a number (OBX-2 is {value_type})", obx.where(5))
        return None
    quantity: dict[str, Any] = {"value": value, **(unit or {})}
    if comparator:
        quantity["comparator"] = comparator.group()
    return {"valueQuantity": quantity}


# --- vaccinations ----------------------------------------------------------------------------


def _vaccinations(
    mapper: Mapper,
    parsed: Parsed,
    patient_key: str,
    subject: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rxas = parsed.all("RXA")
    if not rxas:
        mapper.issue("required", "The VXU has no RXA segment", "RXA")
    for rxa in rxas:
        imm: dict[str, Any] = {"resourceType": "Immunization"}
        mapper.apply(rxa, imm)
        rxr = _following(parsed, rxa, "RXR", "RXA")
        if rxr is not None:
            mapper.apply(rxr, imm)
        _vaccination_details(mapper, parsed, rxa, imm)
        code_reps = rxa.reps(5)
        if not code_reps:
            mapper.issue("required", "RXA-5 (the vaccine) is empty", rxa.where(5))
            continue
        imm["vaccineCode"] = mapper.concept(code_reps[0], rxa.where(5), required=True)
        if "occurrenceDateTime" not in imm:
            mapper.issue("required", "RXA-3 (when it was given) is empty", rxa.where(3))
            continue
        imm.setdefault("status", "completed")
        if rxa.get(21).upper() == "D":
            imm["status"] = "entered-in-error"
        if imm["status"] == "not-done":
            reason = rxa.reps(18)
            if reason:
                concept = mapper.concept(reason[0], rxa.where(18), required=False)
                if concept:
                    imm["statusReason"] = concept
        dose = number(rxa.get(6))
        if dose is not None and dose != 999:
            quantity: dict[str, Any] = {"value": dose}
            if rxa.get(7, 1):
                quantity.update(
                    {"unit": rxa.get(7, 2) or rxa.get(7, 1), "system": UCUM, "code": rxa.get(7, 1)}
                )
            imm["doseQuantity"] = quantity
        source = rxa.get(9)
        imm["primarySource"] = source in ("", "00")
        imm["patient"] = subject
        if encounter_ref:
            imm["encounter"] = encounter_ref
        imm["performer"] = [
            {"actor": {"reference": mapper.facility.organization, "display": mapper.facility.name}}
        ]
        codes = (
            ",".join(c.get("code", "") for c in imm["vaccineCode"].get("coding", []))
            if imm["vaccineCode"]
            else ""
        )
        iid = derived_id(patient_key, "Immunization", imm["occurrenceDateTime"], codes)
        imm["id"] = iid
        out.append(put_entry(imm))
    return out


# What the OBX segments after an RXA say about the dose (the CDC immunization guide's LOINC
# codes, mapped as the v2-to-FHIR guide's VXU map does): eligibility, funding, and the
# vaccine information statements given (VIS: document, published, presented; OBX-4 groups them).
_ELIGIBILITY, _FUNDING = "64994-7", "30963-3"
_VIS = {"69764-9": "documentType", "29768-9": "publicationDate", "29769-7": "presentationDate"}


def _vaccination_details(mapper: Mapper, parsed: Parsed, rxa: Segment, imm: dict[str, Any]) -> None:
    statements: dict[str, dict[str, str]] = {}
    for obx in parsed.after(rxa):
        if obx.name in ("RXA", "ORC"):
            break
        if obx.name != "OBX" or not obx.reps(5):
            continue
        code, value = obx.get(3), obx.reps(5)[0]
        if code in (_ELIGIBILITY, _FUNDING):
            concept = mapper.concept(value, obx.where(5), required=False)
            if concept and code == _ELIGIBILITY:
                imm.setdefault("programEligibility", []).append(concept)
            elif concept:
                imm["fundingSource"] = concept
        elif code in _VIS:
            element = _VIS[code]
            text = (
                value.get(2) or value.get(1)
                if element == "documentType"
                else dtm(value.get(1), mapper.facility.clock)
            )
            if text:
                statements.setdefault(obx.get(4) or "", {})[element] = text
    # imm-1: a statement given names its document
    education = [s for s in statements.values() if "documentType" in s]
    if education:
        imm["education"] = education


def _following(parsed: Parsed, segment: Segment, name: str, until: str) -> Segment | None:
    """The first ``name`` segment after ``segment`` and before the next ``until`` (the RXR of
    an RXA)."""
    for seg in parsed.after(segment):
        if seg.name == until:
            return None
        if seg.name == name:
            return seg
    return None


# --- merge (ADT^A40) -------------------------------------------------------------------------


def merge_parameters(
    mapper: Mapper, parsed: Parsed, patient: dict[str, Any]
) -> dict[str, Any] | None:
    """The merge instruction of an ADT^A40 (the pipeline hands it to the patient index's merge
    call, ``PatientIndex.link``, through :class:`fhirhub.ingest.adapters.Merge`).

    A Parameters resource shaped after FHIR R5's ``Patient/$merge``: ``source-patient-identifier``
    (MRG-1, the record that goes away), ``target-patient-identifier`` (PID-3, the one that
    stays), ``result-patient`` (the surviving Patient as the PID gives it)."""
    mrg = parsed.first("MRG")
    if mrg is None:
        mapper.issue("required", "ADT^A40 without an MRG segment", "MRG")
        return None
    sources = [mapper.identifier(r, mrg.where(1)) for r in mrg.reps(1)]
    sources = [s for s in sources if s and s.get("system") == mapper.facility.mrn_system]
    if not sources:
        mapper.issue(
            "required",
            f"MRG-1 names no record number of {mapper.facility.code} to merge",
            mrg.where(1),
        )
        return None
    target = [
        i for i in patient.get("identifier", []) if i.get("system") == mapper.facility.mrn_system
    ]
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [MERGE]},
        "parameter": [
            *({"name": "source-patient-identifier", "valueIdentifier": s} for s in sources),
            *({"name": "target-patient-identifier", "valueIdentifier": t} for t in target),
            {"name": "result-patient", "resource": patient},
        ],
    }


def merges_of(params: dict[str, Any], mrg: Any) -> list[Merge]:
    """The :class:`Merge` of each retired record of a merge Parameters."""
    by_name: dict[str, list[Any]] = {}
    for p in params["parameter"]:
        by_name.setdefault(p["name"], []).append(p.get("valueIdentifier"))
    survivors = [t for t in by_name.get("target-patient-identifier", []) if t]
    if not survivors:
        return []
    surviving = (survivors[0]["system"], survivors[0]["value"])
    where = mrg.where(1) if mrg is not None else "MRG"
    return [
        Merge((s["system"], s["value"]), surviving, where)
        for s in by_name.get("source-patient-identifier", [])
        if s and (s["system"], s["value"]) != surviving
    ]


def _last_wins(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch may carry the same record twice (an admission and its discharge): the later
    message's resource is the one stored, once."""
    by_url: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        key = entry["fullUrl"]
        if key in by_url:
            out[by_url[key]] = entry
        else:
            by_url[key] = len(out)
            out.append(entry)
    return out


def payload_mappings(context: Context) -> Mappings:
    return load_mappings(context.mappings_dir / "rsud")
