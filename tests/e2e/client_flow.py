"""The original flow, through the Python client GENERATED from openapi/openapi.yaml.

Usage: python client_flow.py BASE_URL

Registers a user, logs in, then creates, lists, reads, updates and deletes a
patient and a doctor, assigns the doctor to the patient and unassigns it,
asserting on the parsed, typed models the generated client returns (never on
raw JSON). Exits non-zero on the first mismatch.
"""

from __future__ import annotations

import secrets
import sys
from http import HTTPStatus

from healthcare_api_client import AuthenticatedClient, Client
from healthcare_api_client.api.auth import get_current_user, login, register
from healthcare_api_client.api.doctors import (
    create_doctor,
    delete_doctor,
    get_doctor,
    list_doctors,
    patch_doctor,
    update_doctor,
)
from healthcare_api_client.api.mappings import (
    assign_doctor,
    list_mappings,
    list_patient_mappings,
    unassign_doctor,
)
from healthcare_api_client.api.patients import (
    create_patient,
    delete_patient,
    get_patient,
    list_patient_doctors,
    list_patients,
    patch_patient,
    update_patient,
)
from healthcare_api_client.models import (
    Doctor,
    DoctorInput,
    DoctorPatch,
    Gender,
    LoginInput,
    Mapping,
    MappingInput,
    Patient,
    PatientInput,
    PatientPatch,
    Problem,
    RegisterInput,
    TokenPair,
    User,
)

PASSWORD = "Velvet-Otter-Quarry-42"


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def expect(resp, status: HTTPStatus, model: type, what: str):
    """The response has `status` and its body parsed into `model`."""
    check(
        resp.status_code == status,
        f"{what}: status {int(resp.status_code)} instead of {int(status)}: {resp.content[:300]!r}",
    )
    if model is type(None):
        check(resp.parsed is None, f"{what}: expected no body, parsed {resp.parsed!r}")
        return None
    check(isinstance(resp.parsed, model), f"{what}: parsed {type(resp.parsed).__name__}, not {model.__name__}")
    return resp.parsed


def main(base_url: str) -> None:
    suffix = secrets.token_hex(4)
    username = f"e2e_client_{suffix}"
    anon = Client(base_url=base_url, raise_on_unexpected_status=True)

    # Register and log in.
    user = expect(
        register.sync_detailed(
            client=anon,
            body=RegisterInput(username=username, email=f"{username}@example.com", password=PASSWORD),
        ),
        HTTPStatus.CREATED,
        User,
        "register",
    )
    check(user.username == username and user.id > 0, f"register: {user!r}")
    check(user.is_staff is False, "register: a new user is not staff")

    weak = expect(
        register.sync_detailed(
            client=anon,
            body=RegisterInput(username=f"x{username}", email=f"x{username}@example.com", password="password123"),
        ),
        HTTPStatus.BAD_REQUEST,
        Problem,
        "register with password123",
    )
    check(weak.status == 400 and "password" in weak.errors.additional_properties, f"weak password: {weak!r}")

    tokens = expect(
        login.sync_detailed(client=anon, body=LoginInput(username=username, password=PASSWORD)),
        HTTPStatus.OK,
        TokenPair,
        "login",
    )
    check(tokens.access.count(".") == 2 and tokens.refresh.count(".") == 2, "login: two JWTs")

    bad = expect(
        login.sync_detailed(client=anon, body=LoginInput(username=username, password="Wrong-Password-99")),
        HTTPStatus.UNAUTHORIZED,
        Problem,
        "login with a wrong password",
    )
    check(bad.status == 401, f"bad login: {bad!r}")

    api = AuthenticatedClient(base_url=base_url, token=tokens.access, raise_on_unexpected_status=True)
    me = expect(get_current_user.sync_detailed(client=api), HTTPStatus.OK, User, "me")
    check(me.id == user.id, "me is the registered user")

    # Patients.
    created = create_patient.sync_detailed(
        client=api, body=PatientInput(name="Ada Lovelace", age=36, gender=Gender.FEMALE)
    )
    patient = expect(created, HTTPStatus.CREATED, Patient, "create patient")
    check(patient.name == "Ada Lovelace" and patient.age == 36, f"create patient: {patient!r}")
    check(patient.gender is Gender.FEMALE, "gender parses into the Gender enum")
    check(patient.created_by == user.id, "the patient is owned by the caller")
    check(created.headers.get("location", "").rstrip("/").endswith(f"/api/patients/{patient.id}"), "Location")

    patients = expect(list_patients.sync_detailed(client=api), HTTPStatus.OK, list, "list patients")
    check(all(isinstance(p, Patient) for p in patients), "list patients: Patient models")
    check([p.id for p in patients] == [patient.id], f"list patients: {patients!r}")

    got = get_patient.sync_detailed(id=patient.id, client=api)
    fetched = expect(got, HTTPStatus.OK, Patient, "get patient")
    check(fetched.id == patient.id and fetched.name == patient.name, "get patient")
    etag = got.headers.get("etag")
    check(bool(etag), "get patient: ETag")

    updated = expect(
        update_patient.sync_detailed(
            id=patient.id,
            client=api,
            body=PatientInput(name="Ada King", age=37, gender=Gender.FEMALE),
            if_match=etag,
        ),
        HTTPStatus.OK,
        Patient,
        "update patient",
    )
    check(updated.name == "Ada King" and updated.age == 37, f"update patient: {updated!r}")
    check(updated.updated_at >= updated.created_at, "update patient: timestamps parse as datetimes")

    stale = expect(
        update_patient.sync_detailed(
            id=patient.id,
            client=api,
            body=PatientInput(name="Lost Update", age=1, gender=Gender.OTHER),
            if_match=etag,
        ),
        HTTPStatus.PRECONDITION_FAILED,
        Problem,
        "update patient with a stale ETag",
    )
    check(stale.status == 412, "stale If-Match is a 412")

    patched = expect(
        patch_patient.sync_detailed(id=patient.id, client=api, body=PatientPatch(age=38)),
        HTTPStatus.OK,
        Patient,
        "patch patient",
    )
    check(patched.age == 38 and patched.name == "Ada King", f"patch patient: {patched!r}")

    # Doctors.
    doctor = expect(
        create_doctor.sync_detailed(client=api, body=DoctorInput(name="Dr. Gregory House", specialization="Diagnostics")),
        HTTPStatus.CREATED,
        Doctor,
        "create doctor",
    )
    check(doctor.specialization == "Diagnostics" and doctor.created_by == user.id, f"create doctor: {doctor!r}")
    doctors = expect(list_doctors.sync_detailed(client=api), HTTPStatus.OK, list, "list doctors")
    check(any(isinstance(d, Doctor) and d.id == doctor.id for d in doctors), "list doctors has the doctor")
    fetched_doctor = expect(get_doctor.sync_detailed(id=doctor.id, client=api), HTTPStatus.OK, Doctor, "get doctor")
    check(fetched_doctor.name == "Dr. Gregory House", "get doctor")
    updated_doctor = expect(
        update_doctor.sync_detailed(
            id=doctor.id, client=api, body=DoctorInput(name="Dr. James Wilson", specialization="Oncology")
        ),
        HTTPStatus.OK,
        Doctor,
        "update doctor",
    )
    check(updated_doctor.name == "Dr. James Wilson", "update doctor")
    patched_doctor = expect(
        patch_doctor.sync_detailed(id=doctor.id, client=api, body=DoctorPatch(specialization="Neurology")),
        HTTPStatus.OK,
        Doctor,
        "patch doctor",
    )
    check(patched_doctor.specialization == "Neurology" and patched_doctor.name == "Dr. James Wilson", "patch doctor")

    # Map and unmap.
    mapping = expect(
        assign_doctor.sync_detailed(client=api, body=MappingInput(patient=patient.id, doctor=doctor.id)),
        HTTPStatus.CREATED,
        Mapping,
        "assign doctor",
    )
    check(mapping.patient == patient.id and mapping.doctor == doctor.id, f"assign doctor: {mapping!r}")
    check(mapping.doctor_detail.name == "Dr. James Wilson", "mapping carries doctor_detail")
    duplicate = expect(
        assign_doctor.sync_detailed(client=api, body=MappingInput(patient=patient.id, doctor=doctor.id)),
        HTTPStatus.CONFLICT,
        Problem,
        "assign the same doctor twice",
    )
    check(duplicate.status == 409, "duplicate mapping is a 409")

    all_mappings = expect(list_mappings.sync_detailed(client=api), HTTPStatus.OK, list, "list mappings")
    check([m.id for m in all_mappings] == [mapping.id], f"list mappings: {all_mappings!r}")
    of_patient = expect(
        list_patient_mappings.sync_detailed(id=patient.id, client=api), HTTPStatus.OK, list, "patient mappings"
    )
    check(len(of_patient) == 1 and isinstance(of_patient[0], Mapping), "patient mappings")
    assigned = expect(
        list_patient_doctors.sync_detailed(id=patient.id, client=api), HTTPStatus.OK, list, "patient doctors"
    )
    check([d.id for d in assigned] == [doctor.id], "patient doctors")

    expect(unassign_doctor.sync_detailed(id=mapping.id, client=api), HTTPStatus.NO_CONTENT, type(None), "unassign")
    empty = expect(
        list_patient_mappings.sync_detailed(id=patient.id, client=api), HTTPStatus.OK, list, "patient mappings after"
    )
    check(empty == [], "no mappings after unassign")

    # Delete both, then they are gone.
    expect(delete_doctor.sync_detailed(id=doctor.id, client=api), HTTPStatus.NO_CONTENT, type(None), "delete doctor")
    expect(get_doctor.sync_detailed(id=doctor.id, client=api), HTTPStatus.NOT_FOUND, Problem, "deleted doctor")
    expect(
        delete_patient.sync_detailed(id=patient.id, client=api), HTTPStatus.NO_CONTENT, type(None), "delete patient"
    )
    gone = expect(get_patient.sync_detailed(id=patient.id, client=api), HTTPStatus.NOT_FOUND, Problem, "deleted")
    check(gone.status == 404, "deleted patient is a 404")
    check(expect(list_patients.sync_detailed(client=api), HTTPStatus.OK, list, "list after delete") == [], "empty")

    print(f"client flow OK (user {username}, patient {patient.id}, doctor {doctor.id}, mapping {mapping.id})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
