"""HL7 v2 written the way other systems write it, not the synthetic city's Khanza shape: an
admission with the segments a large EHR sends beside PID and PV1 (EVN, PV2, AL1, IN1, an
alias name, a deprecated PID-2), a laboratory system's results in two order groups with text
and comment observations, a registry-style VXU with RXR and an eligibility OBX, and a v2.7
message with the truncation character in MSH-2. Each is posted over HTTP, acknowledged and
stored; the patient index places each Patient."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _segment(name: str, fields: dict[int, str]) -> str:
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


def _message(*segments: str) -> bytes:
    return "\r".join(segments).encode() + b"\r"


EHR_ADMIT = _message(
    "MSH|^~\\&|EHRADT|RSUD01|HIE|DINKES|20240105120000-0500||ADT^A01|EHR00001|P|2.3",
    "EVN|A01|20240105120000",
    "PID|1|EXT-4471|99887766^^^RSUD01^MR^RSUD01~7472011505800002^^^DUKCAPIL^NNIDN||"
    "SMITH^JOHN^Q^JR^DR^MD^L~JOHNNY^JOHN^^^^^A||19600101|M||2106-3|"
    "123 MAIN ST^APT 4^BAUBAU^SULTRA^93711^IDN^H~PO BOX 9^^BAUBAU^^93711^IDN^M|"
    "|(021)555-1234^PRN^PH|(021)555-9999^WPN^PH|"
    "EN^English|M|CHR|ACCT001^^^RSUD01^AN",
    "NK1|1|SMITH^JANE|SPO^Spouse^HL70063|123 MAIN ST^^BAUBAU^^93711|0812333444",
    _segment(
        "PV1",
        {
            1: "1",
            2: "I",
            3: "2000^2012^01^RSUD01",
            7: "004777^LEBAUER^SIDNEY^J.",
            10: "SUR",
            14: "ADM",
            15: "A0",
            19: "V100^^^RSUD01^VN",
            44: "20240105115000",
        },
    ),
    "PV2|||^CHEST PAIN",
    "AL1|1||^PENICILLIN||RASH",
    "DG1|1|I10|R07.9^Chest pain, unspecified^I10||20240105|A",
    "PR1|1|I9C|89.52^Electrocardiogram^I9C||20240105121500",
    "IN1|1|BPJS|BPJS01|BPJS KESEHATAN",
)

LAB_RESULTS = _message(
    "MSH|^~\\&|LIS|RSUD01|HIE|DINKES|202401051300||ORU^R01|LAB000123|P|2.3.1",
    "PID|||99887766^^^RSUD01^MR||SMITH^JOHN||19600101|M",
    "PV1||O",
    "OBR|1|ORD123|FIL456|24331-1^Lipid panel^LN|||202401050800|||||||202401050830||||||||"
    "202401051255|||F",
    "OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL|<200|N|||F",
    "OBX|2|NM|2571-8^Triglyceride^LN||250|mg/dL|<150|H|||F",
    "OBX|3|TX|^Comment||Sample slightly hemolyzed||||||F",
    "NTE|1||Fasting 10 h~since 20:00",
    "NTE|2|L|Repeat advised",
    "OBR|2|ORD124|FIL457|58410-2^CBC panel^LN|||202401050800||||||||||||||||||F",
    "OBX|1|NM|6690-2^WBC^LN||7.2|10*3/uL|4.5-11.0||||F",
    "OBX|2|NM|789-8^RBC^LN||4.1|10*6/uL|4.5-5.9|L|||C",
    "OBX|3|NM|26515-7^Platelets^LN||<5|10*3/uL|150-400|LL|||F",
    "OBX|4|ED|18748-4^Report^LN||^text^plain^Hex^48656c6c6f||||||F",
    "OBX|5|ED|18748-4^Report^LN||^application^pdf^Base64^JVBERi0=||||||F",
)

REGISTRY_VACCINATION = _message(
    "MSH|^~\\&|IIS|RSUD01|HIE|DINKES|20240110||VXU^V04^VXU_V04|VXU0001|P|2.5.1|||ER|AL|||||"
    "Z22^CDCPHINVS",
    "PID|1||BABY001^^^RSUD01^MR||PUTRI^BY NY^^^^^L|WA ODE^SITI^^^^^M|20240101|F|||"
    "JL MAWAR 1^^BAUBAU^^93711^IDN^H",
    "PD1|||||||||||02^Reminder/recall - any method^HL70215|||||A|20240110|20240110",
    "NK1|1|WA ODE^SITI^^^^^L|MTH^Mother^HL70063|JL MAWAR 1^^BAUBAU^^93711|^PRN^PH^^^62^81234567",
    "ORC|RE||197023^IIS",
    _segment(
        "RXA",
        {
            1: "0",
            2: "1",
            3: "20240101",
            4: "20240101",
            5: "08^Hep B, adolescent or pediatric^CVX",
            6: "0.5",
            7: "mL^mL^UCUM",
            9: "00^New immunization record^NIP001",
            10: "7832-1^LEMON^MIKE^A",
            15: "Z0860BB",
            16: "20251130",
            17: "MSD^Merck^MVX",
            20: "CP",
            21: "A",
        },
    ),
    "RXR|C28161^Intramuscular^NCIT|RT^Right Thigh^HL70163",
    "OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC eligible^HL70064"
    "||||||F|||20240101",
    "OBX|2|CE|30963-3^Vaccine funding source^LN|2|VXC50^Public^CDCPHINVS||||||F",
    "OBX|3|CE|69764-9^Document type^LN|3|253088698300003711160607^Hepatitis B VIS^cdcgs1vis||||||F",
    "OBX|4|DT|29769-7^Date Vis Presented^LN|3|20240101||||||F",
    "ORC|RE||197024^IIS",
    _segment(
        "RXA",
        {
            1: "0",
            2: "1",
            3: "20240101",
            4: "20240101",
            5: "19^BCG^CVX",
            6: "999",
            9: "01^Historical information^NIP001",
            20: "CP",
            21: "A",
        },
    ),
)

TRUNCATION_CHARACTER = _message(
    "MSH|^~\\&#|SIMRS|RSUD KOTA BAUBAU|FHIRHUB|DINKES|20240105083000+0800||ADT^A04^ADT_A01|"
    "A04-77|P|2.7|||AL|NE||UNICODE UTF-8",
    "EVN||20240105083000",
    "PID|1||000555^^^RSUD01^MR||La Ode^Muhammad^^^^^L||19750303|M|||"
    "Jl. Betoambari^^Baubau^Sulawesi Tenggara^93724^ID^H||^PRN^CP^^62^81211112222",
    _segment(
        "PV1",
        {1: "1", 2: "O", 3: "POLI-ANAK^^^RSUD01", 19: "V777^^^RSUD01^VN", 44: "20240105083000"},
    ),
)


def _post(client: TestClient, payload: bytes) -> None:
    r = client.post(
        "/ingest/rsud?mode=sync", content=payload, headers={"content-type": "application/hl7-v2"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed", r.json()


def _search(client: TestClient, query: str) -> list[dict]:
    r = client.get(f"/fhir/{query}")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def test_an_ehrs_admission_with_its_extra_segments(client: TestClient) -> None:
    _post(client, EHR_ADMIT)
    (patient,) = _search(
        client, "Patient?identifier=https://fhir.kemkes.go.id/id/nik|7472011505800002"
    )
    mrns = [i["value"] for i in patient["identifier"] if i.get("system", "").endswith("/rsud01")]
    assert mrns == ["99887766"]  # PID-2 is not taken for a record number
    assert {"value": "EXT-4471"} in [
        {k: v for k, v in i.items() if k != "use"} for i in patient["identifier"]
    ]
    assert [n.get("use") for n in patient["name"]] == ["official", None]  # XPN-7 L, A
    assert [(a.get("use"), a.get("type")) for a in patient["address"]] == [
        ("home", None),
        (None, "postal"),  # XAD-7 M, mailing
    ]
    (encounter,) = _search(client, f"Encounter?subject=Patient/{patient['id']}")
    assert encounter["status"] == "in-progress"
    assert encounter["class"]["code"] == "IMP"
    (condition,) = _search(client, f"Condition?subject=Patient/{patient['id']}")
    assert condition["code"]["coding"][0]["code"] == "R07.9"
    (procedure,) = _search(client, f"Procedure?subject=Patient/{patient['id']}")
    assert procedure["code"]["coding"][0]["code"] == "89.52"
    assert procedure["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    (allergy,) = _search(client, f"AllergyIntolerance?patient=Patient/{patient['id']}")
    assert allergy["code"] == {"text": "PENICILLIN"}
    assert allergy["reaction"][0]["manifestation"] == [{"text": "RASH"}]
    (person,) = _search(client, f"Person?link=Patient/{patient['id']}")
    assert person["link"][0]["target"]["reference"] == f"Patient/{patient['id']}"


def test_a_laboratory_systems_two_order_groups(client: TestClient) -> None:
    _post(client, LAB_RESULTS)
    reports = _search(
        client, "DiagnosticReport?code=http://loinc.org|24331-1,http://loinc.org|58410-2"
    )
    assert sorted(len(r["result"]) for r in reports) == [3, 3]
    (cbc,) = [r for r in reports if r["code"]["coding"][0]["code"] == "58410-2"]
    assert cbc["presentedForm"] == [  # the embedded documents (ED), base64 whatever was sent
        {"contentType": "text/plain", "data": "SGVsbG8="},
        {"contentType": "application/pdf", "data": "JVBERi0="},
    ]
    observations = _search(client, "Observation?_count=50")
    by_code = {
        (o["code"].get("coding") or [{"code": o["code"].get("text")}])[0]["code"]: o
        for o in observations
    }
    assert by_code["2571-8"]["valueQuantity"]["value"] == 250
    assert by_code["2571-8"]["interpretation"][0]["coding"][0]["code"] == "H"
    assert by_code["789-8"]["status"] == "corrected"
    assert by_code["Comment"]["valueString"] == "Sample slightly hemolyzed"
    assert by_code["Comment"]["note"] == [  # the NTEs after its OBX
        {"text": "Fasting 10 h\nsince 20:00"},
        {"text": "Repeat advised"},
    ]
    assert "note" not in by_code["2571-8"]
    # a comparator written into an NM value, as laboratory systems do
    assert by_code["26515-7"]["valueQuantity"]["comparator"] == "<"
    assert by_code["26515-7"]["valueQuantity"]["value"] == 5


def test_a_registry_style_vaccination_message(client: TestClient) -> None:
    _post(client, REGISTRY_VACCINATION)
    immunizations = _search(client, "Immunization")
    assert sorted(i["vaccineCode"]["coding"][0]["code"] for i in immunizations) == ["08", "19"]
    by_code = {i["vaccineCode"]["coding"][0]["code"]: i for i in immunizations}
    assert by_code["08"]["primarySource"] is True
    assert by_code["08"]["lotNumber"] == "Z0860BB"
    assert by_code["08"]["expirationDate"] == "2025-11-30"
    assert by_code["08"]["doseQuantity"]["value"] == 0.5
    assert by_code["08"]["route"]["coding"][0]["code"] == "C28161"  # its RXR's
    assert by_code["08"]["site"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0163",
        "code": "RT",
        "display": "Right Thigh",
    }
    # the OBX after its RXA: eligibility, funding, the information statement given
    assert by_code["08"]["programEligibility"][0]["coding"][0]["code"] == "V02"
    assert by_code["08"]["fundingSource"]["coding"][0]["code"] == "VXC50"
    assert by_code["08"]["education"] == [
        {"documentType": "Hepatitis B VIS", "presentationDate": "2024-01-01"}
    ]
    assert by_code["19"]["primarySource"] is False
    assert "route" not in by_code["19"]  # the RXR before it is the first RXA's
    assert "programEligibility" not in by_code["19"]  # nor are its OBX
    assert "doseQuantity" not in by_code["19"]  # 999: the amount is not known


def test_a_v27_message_with_the_truncation_character(client: TestClient) -> None:
    _post(client, TRUNCATION_CHARACTER)
    (patient,) = _search(
        client, "Patient?identifier=https://fhirhub.baubaukota.go.id/sid/mrn/rsud01|000555"
    )
    assert patient["birthDate"] == "1975-03-03"
    assert _search(client, f"Encounter?subject=Patient/{patient['id']}")[0]["status"] in (
        "arrived",
        "in-progress",
        "finished",
    )


def _admission_with_vitals(control_id: str, event: str, weight: str) -> bytes:
    return _message(
        f"MSH|^~\\&|EHRADT|RSUD01|HIE|DINKES|20240106080000||ADT^{event}|{control_id}|P|2.5",
        "EVN||20240106080000",
        "PID|1||55443322^^^RSUD01^MR||WA ODE^HASNA||19900214|F",
        _segment("PV1", {1: "1", 2: "I", 19: "V200^^^RSUD01^VN", 44: "20240106075000"}),
        "OBX|1|NM|8302-2^Body height^LN||158|cm^centimeter^UCUM|||||F",
        f"OBX|2|NM|29463-7^Body weight^LN||{weight}|kg^kilogram^UCUM|||||F|||20240106081500",
        "NTE|1||Weighed in ward clothes",
        "OBX|3|ST|ADMNOTE^Admission note^L||Arrived by ambulance||||||F",
        "OBX|4|ED|11506-3^Progress note^LN||^text^plain^Base64^SGVsbG8=||||||F",
        "DG1|1|I10|O80^Single spontaneous delivery^I10||20240106|A",
    )


def test_an_admissions_obx_become_observations_of_the_visit(client: TestClient) -> None:
    """ADT OBX (the v2-to-FHIR guide's ADT_A01 OBX -> Observation): they were dropped."""
    _post(client, _admission_with_vitals("VIT-1", "A01", "61.5"))
    (patient,) = _search(
        client, "Patient?identifier=https://fhirhub.baubaukota.go.id/sid/mrn/rsud01|55443322"
    )
    (encounter,) = _search(client, f"Encounter?subject=Patient/{patient['id']}")
    observations = _search(client, f"Observation?subject=Patient/{patient['id']}")
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert set(by_code) == {"8302-2", "29463-7", "ADMNOTE"}  # the ED has no report to go to
    weight = by_code["29463-7"]
    assert (
        weight["valueQuantity"]
        == {
            "value": 61.5,
            "unit": "kilogram",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        }
        or weight["valueQuantity"]["value"] == 61.5
    )
    assert weight["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    assert weight["category"][0]["coding"][0]["code"] == "vital-signs"
    assert weight["effectiveDateTime"].startswith("2024-01-06T08:15:00")  # OBX-14
    assert by_code["8302-2"]["effectiveDateTime"].startswith("2024-01-06T08:00:00")  # the event
    assert weight["note"] == [{"text": "Weighed in ward clothes"}]
    assert "category" not in by_code["ADMNOTE"]
    assert by_code["ADMNOTE"]["valueString"] == "Arrived by ambulance"
    # an update of the visit sent with a new weight replaces it: one weight a visit
    _post(client, _admission_with_vitals("VIT-2", "A08", "60.9"))
    weights = _search(
        client, f"Observation?subject=Patient/{patient['id']}&code=http://loinc.org|29463-7"
    )
    assert [w["valueQuantity"]["value"] for w in weights] == [60.9]


ELR_WITH_SPECIMEN = _message(
    "MSH|^~\\&|LIS|RSUD01|HIE|DINKES|20240107100000+0800||ORU^R01^ORU_R01|ELR-0001|P|2.5.1",
    "PID|1||77665544^^^RSUD01^MR||LA ODE^KAIMUDDIN||19850520|M",
    "ORC|RE|PLC-9|FIL-9",
    "OBR|1|PLC-9|FIL-9|57021-8^CBC W Auto Differential panel^LN|||20240107073000|||||||||||||||"
    "20240107095500|||F",
    "OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|13.5-17.5|L|||F",
    "OBX|2|NM|4544-3^Hematocrit^LN||40|%^^UCUM|41-53|L|||F",
    "SPM|1|SP-001&LIS&2.16.360.1&ISO^FL-001&LAB||119297000^Blood specimen^SCT|||"
    "28520004^Venipuncture^SCT|368208006^Left upper arm^SCT|||||||||20240107073000|"
    "20240107080000",
)


def test_a_specimen_segment_becomes_the_reports_specimen(client: TestClient) -> None:
    """SPM (v2.5+ laboratory results): the Specimen of its order group (it was dropped)."""
    _post(client, ELR_WITH_SPECIMEN)
    (report,) = _search(client, "DiagnosticReport?code=http://loinc.org|57021-8")
    (specimen,) = _search(client, "Specimen?_count=10")
    assert report["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}]
    assert specimen["subject"] == report["subject"]
    assert specimen["type"]["coding"][0]["code"] == "119297000"
    assert specimen["collection"]["method"]["coding"][0]["code"] == "28520004"
    assert specimen["collection"]["bodySite"]["coding"][0]["code"] == "368208006"
    assert specimen["collection"]["collectedDateTime"].startswith("2024-01-07T07:30:00")
    assert specimen["receivedTime"].startswith("2024-01-07T08:00:00")
    assert [(i["type"]["coding"][0]["code"], i["value"]) for i in specimen["identifier"]] == [
        ("PLAC", "SP-001"),
        ("FILL", "FL-001"),
    ]
    assert specimen["identifier"][0]["system"] == "urn:hl7v2:specimen:lis"
    observations = _search(client, f"Observation?subject={report['subject']['reference']}")
    assert len(observations) == 2
    assert all(o["specimen"] == {"reference": f"Specimen/{specimen['id']}"} for o in observations)
    # sent again (a resend with a new control id): the same Specimen, not a second one
    _post(client, ELR_WITH_SPECIMEN.replace(b"ELR-0001", b"ELR-0002"))
    assert len(_search(client, "Specimen?_count=10")) == 1
