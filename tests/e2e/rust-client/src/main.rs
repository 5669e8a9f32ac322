//! The original flow, through the Rust client that progenitor GENERATES at
//! build time from openapi/openapi.json (see build.rs).
//!
//! Usage: client-flow BASE_URL
//!
//! .ci/e2e builds it with HEALTHCARE_SPEC set and its own CARGO_TARGET_DIR.
//! By hand, from this directory: `cargo run -- http://127.0.0.1:8000`.
//!
//! Registers a user, logs in, then creates, lists, reads, updates and deletes
//! a patient and a doctor, assigns the doctor to the patient and unassigns
//! it, asserting on the generated, typed values (never on raw JSON, except
//! for problem bodies: see `problem` below). Exits non-zero on the first
//! mismatch.
//!
//! It uses progenitor's builder interface (`client.op().field(..).send()`)
//! and builds request bodies with the generated type builders, so optional
//! parameters and fields that the spec gains later do not break the calls.

use std::fmt::Debug;
use std::process::ExitCode;

use futures_util::StreamExt;
use progenitor_client::{ByteStream, Error, ResponseValue};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, LOCATION};

#[allow(dead_code, unused_imports, clippy::all)]
mod api {
    include!(concat!(env!("OUT_DIR"), "/healthcare.rs"));
}

use api::types::{
    Doctor, DoctorPatchSpecialization, Gender, Mapping, Patient, Problem, TokenPair, User,
};
use api::Client;

const PASSWORD: &str = "Velvet-Otter-Quarry-42";

type Res<T> = Result<T, String>;

macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

/// The call succeeded with `status`; its typed value.
async fn expect<T: Debug>(
    result: Result<ResponseValue<T>, Error<ByteStream>>,
    status: u16,
    what: &str,
) -> Res<ResponseValue<T>> {
    match result {
        Ok(resp) if resp.status().as_u16() == status => Ok(resp),
        Ok(resp) => Err(format!(
            "{what}: status {} instead of {status}: {:?}",
            resp.status(),
            resp.into_inner()
        )),
        Err(Error::ErrorResponse(resp)) => {
            let got = resp.status();
            let body = read_body(resp.into_inner()).await.unwrap_or_default();
            Err(format!(
                "{what}: status {got} instead of {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        }
        Err(e) => Err(format!("{what}: expected {status}, got the error {e}")),
    }
}

async fn read_body(mut stream: ByteStream) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body)
}

/// The call failed with `status` and an RFC 9457 problem body; the problem,
/// as the generated `types::Problem`.
///
/// progenitor (0.15) types a response body only when its media type is
/// `application/json`; every error of this API is `application/problem+json`,
/// so the generated methods hand errors back untyped, as
/// `Error::ErrorResponse(ResponseValue<ByteStream>)`. The `Problem` schema
/// itself is generated; this small wrapper only reads the body into it.
async fn problem<T: Debug>(
    result: Result<ResponseValue<T>, Error<ByteStream>>,
    status: u16,
    what: &str,
) -> Res<Problem> {
    let resp = match result {
        Err(Error::ErrorResponse(resp)) => resp,
        Err(e) => {
            return Err(format!(
                "{what}: expected a {status} problem, got the error {e}"
            ))
        }
        Ok(resp) => {
            return Err(format!(
                "{what}: expected a {status} problem, got {}: {:?}",
                resp.status(),
                resp.into_inner()
            ))
        }
    };
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = read_body(resp.into_inner())
        .await
        .map_err(|e| format!("{what}: reading the problem body: {e}"))?;
    check!(
        got == status,
        "{what}: status {got} instead of {status}: {}",
        String::from_utf8_lossy(&body)
    );
    check!(
        content_type.starts_with("application/problem+json"),
        "{what}: Content-Type {content_type:?}, not application/problem+json"
    );
    let problem: Problem = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{what}: the body is not a Problem ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    check!(
        problem.status == status,
        "{what}: problem.status {} in a {status} response",
        problem.status
    );
    Ok(problem)
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `MappingInput`'s ids have `minimum: 1`, so typify makes them `NonZeroU64`
/// while `Patient.id` and `Doctor.id` are `i64`; the builder takes a `u64`
/// (and refuses 0 itself).
fn positive(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

/// A unique suffix per run (no extra crate: the clock and the process id).
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:08x}",
        (nanos as u64 ^ (u64::from(std::process::id()) << 32)) as u32
    )
}

async fn flow(base_url: &str) -> Res<String> {
    let username = format!("e2e_rust_{}", suffix());
    let anon = Client::new(base_url);

    // Register and log in.
    let user: User = expect(
        anon.register()
            .body_map(|b| {
                b.username(username.as_str())
                    .email(format!("{username}@example.com").as_str())
                    .password(PASSWORD)
            })
            .send()
            .await,
        201,
        "register",
    )
    .await?
    .into_inner();
    check!(
        *user.username == username && user.id > 0,
        "register: {user:?}"
    );
    check!(!user.is_staff, "register: a new user is not staff");

    let weak = problem(
        anon.register()
            .body_map(|b| {
                b.username(format!("x{username}").as_str())
                    .email(format!("x{username}@example.com").as_str())
                    .password("password123")
            })
            .send()
            .await,
        400,
        "register with password123",
    )
    .await?;
    check!(
        weak.title == "Bad Request",
        "weak password: title {:?}",
        weak.title
    );
    check!(
        weak.errors
            .get("password")
            .is_some_and(|msgs| !msgs.is_empty()),
        "weak password: errors has no 'password': {weak:?}"
    );

    let tokens: TokenPair = expect(
        anon.login()
            .body_map(|b| b.username(username.as_str()).password(PASSWORD))
            .send()
            .await,
        200,
        "login",
    )
    .await?
    .into_inner();
    check!(
        tokens.access.matches('.').count() == 2 && tokens.refresh.matches('.').count() == 2,
        "login: two JWTs"
    );

    let bad = problem(
        anon.login()
            .body_map(|b| b.username(username.as_str()).password("Wrong-Password-99"))
            .send()
            .await,
        401,
        "login with a wrong password",
    )
    .await?;
    check!(
        bad.title == "Unauthorized" && bad.errors.is_empty(),
        "bad login: {bad:?}"
    );

    // progenitor leaves authentication to the reqwest client it is given.
    let mut auth = HeaderMap::new();
    let bearer =
        HeaderValue::from_str(&format!("Bearer {}", tokens.access)).map_err(|e| e.to_string())?;
    auth.insert(AUTHORIZATION, bearer);
    let http = reqwest::Client::builder()
        .default_headers(auth)
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let api = Client::new_with_client(base_url, http);

    let me: User = expect(api.get_current_user().send().await, 200, "me")
        .await?
        .into_inner();
    check!(me.id == user.id, "me is the registered user");

    // Patients.
    let created = expect(
        api.create_patient()
            .body_map(|b| b.name("Ada Lovelace").age(36).gender(Gender::Female))
            .send()
            .await,
        201,
        "create patient",
    )
    .await?;
    let location = header(created.headers(), LOCATION);
    let patient: Patient = created.into_inner();
    check!(
        *patient.name == "Ada Lovelace" && patient.age == 36,
        "create patient: {patient:?}"
    );
    check!(
        patient.gender == Gender::Female,
        "gender parses into the Gender enum"
    );
    check!(
        patient.created_by == user.id,
        "the patient is owned by the caller"
    );
    check!(
        location
            .trim_end_matches('/')
            .ends_with(&format!("/api/patients/{}", patient.id)),
        "Location {location:?}"
    );

    let patients: Vec<Patient> = expect(api.list_patients().send().await, 200, "list patients")
        .await?
        .into_inner();
    check!(
        patients.iter().map(|p| p.id).eq([patient.id]),
        "list patients: {patients:?}"
    );

    let got = expect(
        api.get_patient().id(patient.id).send().await,
        200,
        "get patient",
    )
    .await?;
    let etag = header(got.headers(), ETAG);
    let fetched = got.into_inner();
    check!(
        fetched.id == patient.id && fetched.name == patient.name,
        "get patient: {fetched:?}"
    );
    check!(!etag.is_empty(), "get patient: ETag");

    let updated: Patient = expect(
        api.update_patient()
            .id(patient.id)
            .if_match(etag.as_str())
            .body_map(|b| b.name("Ada King").age(37).gender(Gender::Female))
            .send()
            .await,
        200,
        "update patient",
    )
    .await?
    .into_inner();
    check!(
        *updated.name == "Ada King" && updated.age == 37,
        "update patient: {updated:?}"
    );
    check!(
        updated.updated_at >= updated.created_at,
        "update patient: timestamps parse as DateTime<Utc>"
    );

    let stale = problem(
        api.update_patient()
            .id(patient.id)
            .if_match(etag.as_str())
            .body_map(|b| b.name("Lost Update").age(1).gender(Gender::Other))
            .send()
            .await,
        412,
        "update patient with a stale ETag",
    )
    .await?;
    check!(
        stale.title == "Precondition Failed",
        "stale If-Match: {stale:?}"
    );

    let patched: Patient = expect(
        api.patch_patient()
            .id(patient.id)
            .body_map(|b| b.age(38))
            .send()
            .await,
        200,
        "patch patient",
    )
    .await?
    .into_inner();
    check!(
        patched.age == 38 && *patched.name == "Ada King",
        "patch patient: {patched:?}"
    );

    // Doctors.
    let doctor: Doctor = expect(
        api.create_doctor()
            .body_map(|b| b.name("Dr. Gregory House").specialization("Diagnostics"))
            .send()
            .await,
        201,
        "create doctor",
    )
    .await?
    .into_inner();
    check!(
        *doctor.specialization == "Diagnostics" && doctor.created_by == user.id,
        "create doctor: {doctor:?}"
    );
    let doctors: Vec<Doctor> = expect(api.list_doctors().send().await, 200, "list doctors")
        .await?
        .into_inner();
    check!(
        doctors.iter().any(|d| d.id == doctor.id),
        "list doctors has the doctor"
    );
    let fetched_doctor: Doctor = expect(
        api.get_doctor().id(doctor.id).send().await,
        200,
        "get doctor",
    )
    .await?
    .into_inner();
    check!(
        *fetched_doctor.name == "Dr. Gregory House",
        "get doctor: {fetched_doctor:?}"
    );
    let updated_doctor: Doctor = expect(
        api.update_doctor()
            .id(doctor.id)
            .body_map(|b| b.name("Dr. James Wilson").specialization("Oncology"))
            .send()
            .await,
        200,
        "update doctor",
    )
    .await?
    .into_inner();
    check!(
        *updated_doctor.name == "Dr. James Wilson",
        "update doctor: {updated_doctor:?}"
    );
    let patched_doctor: Doctor = expect(
        api.patch_doctor()
            .id(doctor.id)
            .body_map(|b| b.specialization(DoctorPatchSpecialization::try_from("Neurology").ok()))
            .send()
            .await,
        200,
        "patch doctor",
    )
    .await?
    .into_inner();
    check!(
        *patched_doctor.specialization == "Neurology" && *patched_doctor.name == "Dr. James Wilson",
        "patch doctor: {patched_doctor:?}"
    );

    // Map and unmap.
    let mapping: Mapping = expect(
        api.assign_doctor()
            .body_map(|b| b.patient(positive(patient.id)).doctor(positive(doctor.id)))
            .send()
            .await,
        201,
        "assign doctor",
    )
    .await?
    .into_inner();
    check!(
        mapping.patient == patient.id && mapping.doctor == doctor.id,
        "assign doctor: {mapping:?}"
    );
    check!(
        *mapping.doctor_detail.name == "Dr. James Wilson",
        "mapping carries doctor_detail"
    );
    let duplicate = problem(
        api.assign_doctor()
            .body_map(|b| b.patient(positive(patient.id)).doctor(positive(doctor.id)))
            .send()
            .await,
        409,
        "assign the same doctor twice",
    )
    .await?;
    check!(
        duplicate.title == "Conflict",
        "duplicate mapping: {duplicate:?}"
    );

    let all: Vec<Mapping> = expect(api.list_mappings().send().await, 200, "list mappings")
        .await?
        .into_inner();
    check!(
        all.iter().map(|m| m.id).eq([mapping.id]),
        "list mappings: {all:?}"
    );
    let of_patient: Vec<Mapping> = expect(
        api.list_patient_mappings().id(patient.id).send().await,
        200,
        "patient mappings",
    )
    .await?
    .into_inner();
    check!(
        of_patient.len() == 1 && of_patient[0].id == mapping.id,
        "patient mappings: {of_patient:?}"
    );
    let assigned: Vec<Doctor> = expect(
        api.list_patient_doctors().id(patient.id).send().await,
        200,
        "patient doctors",
    )
    .await?
    .into_inner();
    check!(
        assigned.iter().map(|d| d.id).eq([doctor.id]),
        "patient doctors: {assigned:?}"
    );

    expect(
        api.unassign_doctor().id(mapping.id).send().await,
        204,
        "unassign",
    )
    .await?;
    let empty: Vec<Mapping> = expect(
        api.list_patient_mappings().id(patient.id).send().await,
        200,
        "patient mappings after",
    )
    .await?
    .into_inner();
    check!(empty.is_empty(), "no mappings after unassign: {empty:?}");

    // Delete both, then they are gone.
    expect(
        api.delete_doctor().id(doctor.id).send().await,
        204,
        "delete doctor",
    )
    .await?;
    problem(
        api.get_doctor().id(doctor.id).send().await,
        404,
        "deleted doctor",
    )
    .await?;
    expect(
        api.delete_patient().id(patient.id).send().await,
        204,
        "delete patient",
    )
    .await?;
    let gone = problem(
        api.get_patient().id(patient.id).send().await,
        404,
        "deleted patient",
    )
    .await?;
    check!(gone.title == "Not Found", "deleted patient: {gone:?}");
    let after: Vec<Patient> = expect(api.list_patients().send().await, 200, "list after delete")
        .await?
        .into_inner();
    check!(after.is_empty(), "list after delete: {after:?}");

    Ok(format!(
        "rust client flow OK (user {username}, patient {}, doctor {}, mapping {})",
        patient.id, doctor.id, mapping.id
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: client-flow BASE_URL");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rust client flow: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(flow(args[1].trim_end_matches('/'))) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(what) => {
            eprintln!("rust client flow FAILED: {what}");
            ExitCode::FAILURE
        }
    }
}
