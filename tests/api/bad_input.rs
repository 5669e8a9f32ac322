//! Bad input of every kind: each one is a 4xx problem document (never a 5xx,
//! never plain text) and leaves the database as it was.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, User, spawn_app, unique};

const JSON: &str = "application/json";

/// What a rejected request must answer with.
#[derive(Clone, Copy)]
struct Expect {
    status: u16,
    /// The field `errors` must name, if any.
    field: Option<&'static str>,
}

const fn problem(status: u16) -> Expect {
    Expect {
        status,
        field: None,
    }
}

const fn field(name: &'static str) -> Expect {
    Expect {
        status: 400,
        field: Some(name),
    }
}

/// Why `reply` is not the expected problem document, or `None` when it is.
fn mismatch(reply: &Reply, expect: Expect) -> Option<String> {
    let status = expect.status;
    if reply.status.as_u16() != status {
        return Some(format!(
            "status {} instead of {status}; body: {}",
            reply.status, reply.text
        ));
    }
    if reply.header("content-type") != Some("application/problem+json") {
        return Some(format!(
            "Content-Type {:?} instead of application/problem+json; body: {}",
            reply.header("content-type"),
            reply.text
        ));
    }
    let Ok(body) = serde_json::from_str::<Value>(&reply.text) else {
        return Some(format!("body is not JSON: {}", reply.text));
    };
    if body["status"] != status {
        return Some(format!("`status` member is not {status}: {body}"));
    }
    for member in ["type", "title", "detail"] {
        if body[member].as_str().is_none_or(str::is_empty) {
            return Some(format!("no `{member}` member: {body}"));
        }
    }
    if let Some(field) = expect.field
        && !body["errors"][field]
            .as_array()
            .is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string))
    {
        return Some(format!("`errors` does not name `{field}`: {body}"));
    }
    None
}

#[track_caller]
fn assert_problem(label: &str, reply: &Reply, expect: Expect) {
    if let Some(why) = mismatch(reply, expect) {
        panic!("{label}: {why}");
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise")
}

fn patient_body(name: Value, age: Value, gender: Value) -> Vec<u8> {
    bytes(&json!({"name": name, "age": age, "gender": gender}))
}

async fn doctor_rows_of(app: &TestApp, user_id: i64) -> Vec<healthcare::entity::doctor::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    healthcare::entity::doctor::Entity::find()
        .filter(healthcare::entity::doctor::Column::CreatedBy.eq(user_id))
        .all(&app.db)
        .await
        .expect("query doctors")
}

type Snapshot = (
    Vec<healthcare::entity::patient::Model>,
    Vec<healthcare::entity::doctor::Model>,
    Vec<healthcare::entity::mapping::Model>,
);

/// A user with one patient and one doctor, to send bad input about.
struct Setup {
    app: TestApp,
    user: User,
    patient: Value,
    doctor: Value,
}

impl Setup {
    async fn new() -> Self {
        let app = spawn_app().await;
        let user = app.user().await;
        let patient = app.create_patient(&user.access, &unique("Patient ")).await;
        let doctor = app.create_doctor(&user.access, &unique("Dr. ")).await;
        Self {
            app,
            user,
            patient,
            doctor,
        }
    }

    fn pid(&self) -> i64 {
        self.patient["id"].as_i64().unwrap()
    }

    fn did(&self) -> i64 {
        self.doctor["id"].as_i64().unwrap()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| vec![("content-type", ct)])
            .unwrap_or_default();
        self.app
            .raw(method, path, Some(&self.user.access), &headers, body)
            .await
    }

    /// The whole state these tests can touch, straight from the database.
    async fn snapshot(&self) -> Snapshot {
        (
            self.app.patient_rows_of(self.user.id).await,
            doctor_rows_of(&self.app, self.user.id).await,
            self.app.mapping_rows(self.pid()).await,
        )
    }

    /// Sends `body` as a new patient, as a replacement and as a merge patch
    /// of the existing one: each must be the expected problem, and nothing
    /// may change.
    async fn reject_patient_body(
        &self,
        label: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        expect: Expect,
    ) {
        let before = self.snapshot().await;
        let one = format!("/api/patients/{}/", self.pid());
        for (method, path) in [
            (Method::POST, "/api/patients/"),
            (Method::PUT, one.as_str()),
            (Method::PATCH, one.as_str()),
        ] {
            let reply = self
                .send(method.clone(), path, content_type, body.clone())
                .await;
            assert_problem(&format!("{label} ({method} {path})"), &reply, expect);
        }
        assert_eq!(
            self.snapshot().await,
            before,
            "{label}: the database changed"
        );
    }

    /// Like [`reject_patient_body`](Self::reject_patient_body), for doctors.
    async fn reject_doctor_body(
        &self,
        label: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        expect: Expect,
    ) {
        let before = self.snapshot().await;
        let one = format!("/api/doctors/{}/", self.did());
        for (method, path) in [
            (Method::POST, "/api/doctors/"),
            (Method::PUT, one.as_str()),
            (Method::PATCH, one.as_str()),
        ] {
            let reply = self
                .send(method.clone(), path, content_type, body.clone())
                .await;
            assert_problem(&format!("{label} ({method} {path})"), &reply, expect);
        }
        assert_eq!(
            self.snapshot().await,
            before,
            "{label}: the database changed"
        );
    }

    /// Sends `body` as a new mapping: it must be the expected problem and
    /// create nothing.
    async fn reject_mapping_body(&self, label: &str, body: Vec<u8>, expect: Expect) {
        let before = self.snapshot().await;
        let reply = self
            .send(Method::POST, "/api/mappings/", Some(JSON), body)
            .await;
        assert_problem(label, &reply, expect);
        assert_eq!(
            self.snapshot().await,
            before,
            "{label}: the database changed"
        );
    }
}

// ---- Bodies that are not a JSON object -------------------------------------

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let s = Setup::new().await;
    s.reject_patient_body(
        "not JSON",
        Some(JSON),
        b"name=Alice&age=30".to_vec(),
        problem(400),
    )
    .await;
}

#[tokio::test]
async fn truncated_json_is_a_400() {
    let s = Setup::new().await;
    s.reject_patient_body(
        "truncated JSON",
        Some(JSON),
        br#"{"name": "Alice", "age": 3"#.to_vec(),
        problem(400),
    )
    .await;
}

#[tokio::test]
async fn json_followed_by_garbage_is_a_400() {
    let s = Setup::new().await;
    s.reject_patient_body(
        "trailing garbage",
        Some(JSON),
        br#"{"name": "Alice", "age": 30, "gender": "Female"} trailing"#.to_vec(),
        problem(400),
    )
    .await;
}

#[tokio::test]
async fn json_that_is_not_an_object_is_a_400() {
    let s = Setup::new().await;
    for (label, body) in [
        (
            "array",
            r#"[{"name": "Alice", "age": 30, "gender": "Female"}]"#,
        ),
        ("string", r#""Alice""#),
        ("number", "30"),
        ("null", "null"),
        ("boolean", "true"),
    ] {
        s.reject_patient_body(
            &format!("JSON {label} instead of an object"),
            Some(JSON),
            body.as_bytes().to_vec(),
            problem(400),
        )
        .await;
    }
}

#[tokio::test]
async fn an_empty_or_blank_body_is_a_400() {
    let s = Setup::new().await;
    s.reject_patient_body("empty body", Some(JSON), vec![], problem(400))
        .await;
    s.reject_patient_body("blank body", Some(JSON), b" \n\t ".to_vec(), problem(400))
        .await;
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_400() {
    let s = Setup::new().await;
    let mut body = br#"{"name": ""#.to_vec();
    body.extend([0xff, 0xfe, 0xc3]);
    body.extend(br#"", "age": 30, "gender": "Female"}"#);
    s.reject_patient_body("invalid UTF-8", Some(JSON), body, problem(400))
        .await;
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415() {
    let s = Setup::new().await;
    let valid = patient_body(json!("Alice"), json!(30), json!("Female"));
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "not a media type",
    ] {
        s.reject_patient_body(
            &format!("Content-Type: {content_type}"),
            Some(content_type),
            valid.clone(),
            problem(415),
        )
        .await;
    }
    s.reject_doctor_body(
        "Content-Type: text/plain",
        Some("text/plain"),
        bytes(&json!({"name": "Dr. X", "specialization": "Cardiology"})),
        problem(415),
    )
    .await;
    let mapping = bytes(&json!({"patient": s.pid(), "doctor": s.did()}));
    let reply = s
        .send(Method::POST, "/api/mappings/", Some("text/plain"), mapping)
        .await;
    assert_problem("mapping as text/plain", &reply, problem(415));
    assert!(s.app.mapping_rows(s.pid()).await.is_empty());
}

#[tokio::test]
async fn a_body_without_content_type_is_a_415() {
    let s = Setup::new().await;
    s.reject_patient_body(
        "no Content-Type",
        None,
        patient_body(json!("Alice"), json!(30), json!("Female")),
        problem(415),
    )
    .await;
    s.reject_doctor_body(
        "no Content-Type",
        None,
        bytes(&json!({"name": "Dr. X", "specialization": "Cardiology"})),
        problem(415),
    )
    .await;
}

#[tokio::test]
async fn json_nested_too_deeply_is_a_400() {
    let s = Setup::new().await;
    let depth = 20_000;
    let body = format!(
        r#"{{"name": {}{}, "age": 30, "gender": "Female"}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    s.reject_patient_body(
        "deeply nested JSON",
        Some(JSON),
        body.into_bytes(),
        problem(400),
    )
    .await;
    // Nesting the parser accepts is still no name.
    let mut nested = json!("Alice");
    for _ in 0..50 {
        nested = json!({ "x": nested });
    }
    s.reject_patient_body(
        "nested object as the name",
        Some(JSON),
        patient_body(nested, json!(30), json!("Female")),
        field("name"),
    )
    .await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413() {
    let s = Setup::new().await;
    let name = "a".repeat(70 * 1024);
    s.reject_patient_body(
        "70 KiB body",
        Some(JSON),
        patient_body(json!(name), json!(30), json!("Female")),
        problem(413),
    )
    .await;
    // Padding with whitespace does not get a large body through either.
    let mut padded = patient_body(json!("Alice"), json!(30), json!("Female"));
    padded.splice(1..1, std::iter::repeat_n(b' ', 70 * 1024));
    s.reject_patient_body("70 KiB of whitespace", Some(JSON), padded, problem(413))
        .await;
}

// ---- Field values ----------------------------------------------------------

#[tokio::test]
async fn a_missing_required_field_is_named() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let reply = s
        .app
        .post("/api/patients/", Some(&s.user.access), json!({}))
        .await;
    for name in ["name", "age", "gender"] {
        assert_problem(&format!("POST {{}}: {name}"), &reply, field(name));
    }
    let put = s
        .app
        .put(
            &format!("/api/patients/{}/", s.pid()),
            &s.user.access,
            json!({"name": "Only a name"}),
        )
        .await;
    assert_problem("PUT without age and gender: age", &put, field("age"));
    assert_problem("PUT without age and gender: gender", &put, field("gender"));
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn an_empty_or_whitespace_only_name_is_a_400_naming_name() {
    let s = Setup::new().await;
    for name in ["", " ", "   \t\n  ", "\u{00a0}\u{2003}"] {
        s.reject_patient_body(
            &format!("name {name:?}"),
            Some(JSON),
            patient_body(json!(name), json!(30), json!("Female")),
            field("name"),
        )
        .await;
        s.reject_doctor_body(
            &format!("doctor name {name:?}"),
            Some(JSON),
            bytes(&json!({"name": name, "specialization": "Cardiology"})),
            field("name"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_name_over_200_characters_is_a_400_naming_name() {
    let s = Setup::new().await;
    for (label, name) in [
        ("201 ASCII characters", "a".repeat(201)),
        ("201 CJK characters", "山".repeat(201)),
    ] {
        s.reject_patient_body(
            label,
            Some(JSON),
            patient_body(json!(name), json!(30), json!("Female")),
            field("name"),
        )
        .await;
        s.reject_doctor_body(
            label,
            Some(JSON),
            bytes(&json!({"name": name, "specialization": "Cardiology"})),
            field("name"),
        )
        .await;
    }
    // 200 characters is the limit, counted in characters, not bytes.
    let name = "山".repeat(200);
    let created = s
        .app
        .post(
            "/api/patients/",
            Some(&s.user.access),
            json!({"name": name, "age": 30, "gender": "Female"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["name"], name.as_str());
}

#[tokio::test]
async fn control_characters_in_a_name_are_a_400_naming_name() {
    let s = Setup::new().await;
    for name in [
        "Ali\u{0}ce",
        "Ali\u{7}ce",
        "Ali\nce",
        "Ali\u{1b}[31mce",
        "Ali\u{7f}ce",
    ] {
        s.reject_patient_body(
            &format!("name {name:?}"),
            Some(JSON),
            patient_body(json!(name), json!(30), json!("Female")),
            field("name"),
        )
        .await;
        s.reject_doctor_body(
            &format!("doctor name {name:?}"),
            Some(JSON),
            bytes(&json!({"name": name, "specialization": "Cardiology"})),
            field("name"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_name_that_is_not_a_string_is_a_400_naming_name() {
    let s = Setup::new().await;
    for name in [
        json!(42),
        json!(true),
        json!(["Alice"]),
        json!({"first": "Alice"}),
    ] {
        s.reject_patient_body(
            &format!("name {name}"),
            Some(JSON),
            patient_body(name, json!(30), json!("Female")),
            field("name"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_age_that_is_not_a_whole_number_from_0_to_150_is_a_400_naming_age() {
    let s = Setup::new().await;
    let cases: [(&str, &str); 10] = [
        ("-1", "negative"),
        ("151", "above 150"),
        ("\"30\"", "a string"),
        ("30.5", "a fraction"),
        ("null", "null"),
        ("1e100", "huge exponent"),
        ("4294967326", "past 32 bits"),
        ("99999999999999999999999", "past 64 bits"),
        ("-9223372036854775809", "past -2^63"),
        ("[30]", "an array"),
    ];
    for (age, what) in cases {
        let body = format!(r#"{{"name": "Alice", "age": {age}, "gender": "Female"}}"#);
        s.reject_patient_body(
            &format!("age {age} ({what})"),
            Some(JSON),
            body.into_bytes(),
            field("age"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_gender_outside_the_four_choices_is_a_400_naming_gender() {
    let s = Setup::new().await;
    for gender in [
        json!("female"),
        json!("FEMALE"),
        json!("X"),
        json!("F"),
        json!(""),
        json!(1),
        json!(null),
    ] {
        s.reject_patient_body(
            &format!("gender {gender}"),
            Some(JSON),
            patient_body(json!("Alice"), json!(30), gender),
            field("gender"),
        )
        .await;
    }
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let reply = s
        .app
        .post(
            "/api/patients/",
            Some(&s.user.access),
            json!({"name": " ", "age": 200, "gender": "x", "colour": "blue"}),
        )
        .await;
    for name in ["name", "age", "gender", "colour"] {
        assert_problem(&format!("errors.{name}"), &reply, field(name));
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn an_unknown_field_is_a_400_naming_it() {
    let s = Setup::new().await;
    s.reject_patient_body(
        "unknown field on a patient",
        Some(JSON),
        bytes(&json!({"name": "Alice", "age": 30, "gender": "Female", "is_admin": true})),
        field("is_admin"),
    )
    .await;
    s.reject_doctor_body(
        "unknown field on a doctor",
        Some(JSON),
        bytes(&json!({"name": "Dr. X", "specialization": "Cardiology", "salary": 1})),
        field("salary"),
    )
    .await;
    s.reject_mapping_body(
        "unknown field on a mapping",
        bytes(&json!({"patient": s.pid(), "doctor": s.did(), "priority": "high"})),
        field("priority"),
    )
    .await;
    // A read-only field of another resource is still unknown here.
    s.reject_patient_body(
        "`specialization` on a patient",
        Some(JSON),
        bytes(&json!({"name": "Alice", "age": 30, "gender": "Female", "specialization": "X"})),
        field("specialization"),
    )
    .await;
}

#[tokio::test]
async fn a_specialization_over_100_characters_is_a_400_naming_specialization() {
    let s = Setup::new().await;
    for specialization in ["x".repeat(101), "é".repeat(101), "  ".into(), String::new()] {
        s.reject_doctor_body(
            &format!(
                "specialization of {} characters",
                specialization.chars().count()
            ),
            Some(JSON),
            bytes(&json!({"name": "Dr. X", "specialization": specialization})),
            field("specialization"),
        )
        .await;
    }
    let ok = s
        .app
        .post(
            "/api/doctors/",
            Some(&s.user.access),
            json!({"name": "Dr. X", "specialization": "é".repeat(100)}),
        )
        .await;
    assert_eq!(ok.status, 201, "100 characters is allowed: {}", ok.text);
}

#[tokio::test]
async fn a_null_in_a_merge_patch_is_a_400_naming_the_field() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    for name in ["name", "age", "gender"] {
        let reply = s
            .app
            .patch(
                &format!("/api/patients/{}/", s.pid()),
                &s.user.access,
                json!({ name: null }),
            )
            .await;
        assert_problem(&format!("PATCH {{{name}: null}}"), &reply, field(name));
    }
    let reply = s
        .app
        .patch(
            &format!("/api/doctors/{}/", s.did()),
            &s.user.access,
            json!({"specialization": null}),
        )
        .await;
    assert_problem(
        "doctor PATCH specialization null",
        &reply,
        field("specialization"),
    );
    assert_eq!(s.snapshot().await, before);
}

// ---- Read-only fields and round trips --------------------------------------

#[tokio::test]
async fn read_only_fields_in_a_put_are_ignored_so_a_get_can_be_put_back() {
    let s = Setup::new().await;
    let intruder = s.app.user().await;
    let foreign = s
        .app
        .create_patient(&intruder.access, &unique("Foreign "))
        .await;
    let foreign_id = foreign["id"].as_i64().unwrap();
    let foreign_before = s.app.patient_row(foreign_id).await;
    let created_at = s.app.patient_row(s.pid()).await.unwrap().created_at;
    let path = format!("/api/patients/{}/", s.pid());

    let mut patient = s.app.get(&path, &s.user.access).await.json();
    patient["name"] = json!("Alice Changed");
    patient["age"] = json!(44);
    let round_trip = s.app.put(&path, &s.user.access, patient.clone()).await;
    assert_eq!(round_trip.status, 200, "{}", round_trip.text);
    let updated = round_trip.json();
    assert_eq!(updated["name"], "Alice Changed");
    assert_eq!(updated["age"], 44);
    assert_eq!(updated["id"], s.pid());
    assert_eq!(updated["created_by"], s.user.id);
    assert_eq!(updated["created_at"], s.patient["created_at"]);

    // Forged read-only values are ignored, not applied.
    let forged = json!({
        "id": foreign_id,
        "name": "Forged",
        "age": 45,
        "gender": "Male",
        "created_by": intruder.id,
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    });
    let reply = s.app.put(&path, &s.user.access, forged).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let row = s.app.patient_row(s.pid()).await.expect("row");
    assert_eq!(row.name, "Forged");
    assert_eq!(row.created_by, s.user.id, "created_by must not change");
    assert_eq!(row.created_at, created_at, "created_at must not change");
    assert_ne!(row.updated_at.timestamp(), 946_684_800);
    assert_eq!(
        s.app.patient_row(foreign_id).await,
        foreign_before,
        "the id in the body must not redirect the update"
    );
    assert_eq!(s.app.get(&path, &intruder.access).await.status, 404);

    // Creating with a forged owner makes the caller the owner all the same.
    let created = s
        .app
        .post(
            "/api/patients/",
            Some(&s.user.access),
            json!({"name": "New", "age": 1, "gender": "Other", "created_by": intruder.id, "id": 1}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created_id = created.json()["id"].as_i64().unwrap();
    assert_eq!(
        s.app.patient_row(created_id).await.unwrap().created_by,
        s.user.id
    );

    // The same round trip works for doctors.
    let dpath = format!("/api/doctors/{}/", s.did());
    let mut doctor = s.app.get(&dpath, &s.user.access).await.json();
    doctor["specialization"] = json!("Neurology");
    doctor["created_by"] = json!(intruder.id);
    let reply = s.app.put(&dpath, &s.user.access, doctor).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let row = s.app.doctor_row(s.did()).await.unwrap();
    assert_eq!(row.specialization, "Neurology");
    assert_eq!(row.created_by, s.user.id);
}

#[tokio::test]
async fn unicode_names_are_accepted_and_round_trip_exactly() {
    let s = Setup::new().await;
    for name in [
        "Zoë Ñúñez 山田",
        "Ωμέγα O'Brien-Łukasz",
        "محمد بن سلمان",
        "Nurse 👩🏽‍⚕️ Ṩ",
    ] {
        let created = s
            .app
            .post(
                "/api/patients/",
                Some(&s.user.access),
                json!({"name": name, "age": 30, "gender": "Female"}),
            )
            .await;
        assert_eq!(created.status, 201, "{name}: {}", created.text);
        let id = created.json()["id"].as_i64().unwrap();
        assert_eq!(created.json()["name"], name);
        let read = s
            .app
            .get(&format!("/api/patients/{id}/"), &s.user.access)
            .await;
        assert_eq!(read.json()["name"], name, "{name}: read back");
        assert_eq!(
            s.app.patient_row(id).await.unwrap().name,
            name,
            "{name}: stored"
        );

        let doctor = s.app.create_doctor(&s.user.access, name).await;
        assert_eq!(doctor["name"], name);
    }
    // Surrounding whitespace is trimmed, inner whitespace kept.
    let created = s
        .app
        .post(
            "/api/patients/",
            Some(&s.user.access),
            json!({"name": "  \tZoë  Ñúñez \n", "age": 30, "gender": "Female"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["name"], "Zoë  Ñúñez");
}

// ---- URLs, routes and methods ----------------------------------------------

#[tokio::test]
async fn an_id_in_the_url_that_is_not_a_number_is_a_400() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let body = bytes(&json!({"name": "Alice", "age": 30, "gender": "Female"}));
    for (method, path) in [
        (Method::GET, "/api/patients/abc/"),
        (Method::PUT, "/api/patients/abc/"),
        (Method::PATCH, "/api/patients/1.5/"),
        (Method::DELETE, "/api/patients/abc/"),
        (Method::GET, "/api/patients/abc/doctors/"),
        (Method::GET, "/api/doctors/abc/"),
        (Method::DELETE, "/api/doctors/0x10/"),
        (Method::GET, "/api/mappings/abc/"),
        (Method::DELETE, "/api/mappings/abc/"),
    ] {
        let reply = s.send(method.clone(), path, Some(JSON), body.clone()).await;
        assert_problem(&format!("{method} {path}"), &reply, problem(400));
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn an_id_in_the_url_beyond_64_bits_is_a_400() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let body = bytes(&json!({"name": "Alice", "age": 30, "gender": "Female"}));
    for (method, path) in [
        (Method::GET, "/api/patients/9223372036854775808/"),
        (Method::PUT, "/api/patients/99999999999999999999/"),
        (Method::DELETE, "/api/patients/99999999999999999999/"),
        (Method::GET, "/api/doctors/99999999999999999999/"),
        (Method::GET, "/api/mappings/-9223372036854775809/"),
    ] {
        let reply = s.send(method.clone(), path, Some(JSON), body.clone()).await;
        assert_problem(&format!("{method} {path}"), &reply, problem(400));
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn a_negative_or_zero_id_is_not_found() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    for (method, path) in [
        (Method::GET, "/api/patients/-1/"),
        (Method::DELETE, "/api/patients/-1/"),
        (Method::GET, "/api/patients/0/"),
        (Method::GET, "/api/patients/-1/doctors/"),
        (Method::GET, "/api/doctors/-1/"),
        (Method::DELETE, "/api/doctors/-1/"),
        (Method::GET, "/api/mappings/-1/"),
        (Method::DELETE, "/api/mappings/-1/"),
        (Method::GET, "/api/patients/-9223372036854775808/"),
    ] {
        let reply = s.send(method.clone(), path, None, vec![]).await;
        assert_problem(&format!("{method} {path}"), &reply, problem(404));
    }
    let put = s
        .app
        .put(
            "/api/patients/-1/",
            &s.user.access,
            json!({"name": "Alice", "age": 30, "gender": "Female"}),
        )
        .await;
    assert_problem("PUT /api/patients/-1/", &put, problem(404));
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let s = Setup::new().await;
    for path in [
        "/api/nothing/",
        "/api/patient/",
        "/api/patients/1/unknown/",
        "/api/mappings/1/2/",
        "/nothing",
    ] {
        let reply = s.send(Method::GET, path, None, vec![]).await;
        assert_problem(&format!("GET {path}"), &reply, problem(404));
    }
    // Without a token too: an unknown route is not an authentication matter.
    let reply = s
        .app
        .raw(Method::GET, "/api/nothing/", None, &[], vec![])
        .await;
    assert_problem("GET /api/nothing/ without a token", &reply, problem(404));
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_listing_the_allowed_methods() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let cases: [(Method, String, &[&str], &[&str]); 5] = [
        (
            Method::PATCH,
            format!("/api/mappings/{}/", s.pid()),
            &["GET", "DELETE"],
            &["PATCH", "PUT", "POST"],
        ),
        (
            Method::PUT,
            format!("/api/mappings/{}/", s.pid()),
            &["GET", "DELETE"],
            &["PATCH", "PUT", "POST"],
        ),
        (
            Method::DELETE,
            "/api/patients/".to_string(),
            &["GET", "POST"],
            &["DELETE", "PUT", "PATCH"],
        ),
        (
            Method::PUT,
            "/api/doctors/".to_string(),
            &["GET", "POST"],
            &["DELETE", "PUT", "PATCH"],
        ),
        (
            Method::POST,
            format!("/api/patients/{}/", s.pid()),
            &["GET", "PUT", "PATCH", "DELETE"],
            &["POST"],
        ),
    ];
    for (method, path, allowed, refused) in cases {
        let label = format!("{method} {path}");
        let body = bytes(&json!({"name": "Alice", "age": 30, "gender": "Female"}));
        let reply = s.send(method, &path, Some(JSON), body).await;
        assert_problem(&label, &reply, problem(405));
        let allow = reply
            .header("allow")
            .unwrap_or_else(|| panic!("{label}: no Allow header"));
        let listed: Vec<String> = allow
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        for m in allowed {
            assert!(
                listed.iter().any(|l| l == m),
                "{label}: Allow {allow:?} lacks {m}"
            );
        }
        for m in refused {
            assert!(
                !listed.iter().any(|l| l == m),
                "{label}: Allow {allow:?} lists {m}"
            );
        }
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn a_bad_limit_or_offset_on_any_list_is_a_400() {
    let s = Setup::new().await;
    let lists = [
        "/api/patients/".to_string(),
        "/api/doctors/".to_string(),
        "/api/mappings/".to_string(),
        format!("/api/mappings/{}/", s.pid()),
        format!("/api/patients/{}/doctors/", s.pid()),
    ];
    let mut failures = Vec::new();
    for list in &lists {
        for (query, expect) in [
            ("limit=0", field("limit")),
            ("limit=1001", field("limit")),
            ("limit=abc", problem(400)),
            ("limit=-1", problem(400)),
            ("limit=1.5", problem(400)),
            ("limit=99999999999999999999999", problem(400)),
            ("offset=-1", problem(400)),
            ("offset=abc", problem(400)),
        ] {
            let reply = s.app.get(&format!("{list}?{query}"), &s.user.access).await;
            if let Some(why) = mismatch(&reply, expect) {
                failures.push(format!("GET {list}?{query}: {why}"));
            }
        }
        let edge = s
            .app
            .get(&format!("{list}?limit=1000"), &s.user.access)
            .await;
        if edge.status != 200 {
            failures.push(format!("GET {list}?limit=1000: {}", edge.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- Mappings --------------------------------------------------------------

#[tokio::test]
async fn a_mapping_with_ids_that_are_not_numbers_is_a_400_naming_the_field() {
    let s = Setup::new().await;
    let (pid, did) = (s.pid(), s.did());
    s.reject_mapping_body(
        "patient as a string",
        bytes(&json!({"patient": pid.to_string(), "doctor": did})),
        field("patient"),
    )
    .await;
    s.reject_mapping_body(
        "doctor as a string",
        bytes(&json!({"patient": pid, "doctor": did.to_string()})),
        field("doctor"),
    )
    .await;
    s.reject_mapping_body(
        "patient as a fraction",
        format!(r#"{{"patient": {pid}.5, "doctor": {did}}}"#).into_bytes(),
        field("patient"),
    )
    .await;
    s.reject_mapping_body(
        "patient as an object",
        bytes(&json!({"patient": {"id": pid}, "doctor": did})),
        field("patient"),
    )
    .await;
    s.reject_mapping_body(
        "doctor past 64 bits",
        format!(r#"{{"patient": {pid}, "doctor": 99999999999999999999999}}"#).into_bytes(),
        field("doctor"),
    )
    .await;
}

#[tokio::test]
async fn a_mapping_with_a_missing_or_null_field_is_a_400_naming_it() {
    let s = Setup::new().await;
    let (pid, did) = (s.pid(), s.did());
    s.reject_mapping_body(
        "missing doctor",
        bytes(&json!({"patient": pid})),
        field("doctor"),
    )
    .await;
    s.reject_mapping_body(
        "missing patient",
        bytes(&json!({"doctor": did})),
        field("patient"),
    )
    .await;
    s.reject_mapping_body(
        "null doctor",
        bytes(&json!({"patient": pid, "doctor": null})),
        field("doctor"),
    )
    .await;
    s.reject_mapping_body("empty object", b"{}".to_vec(), field("patient"))
        .await;
}

#[tokio::test]
async fn a_mapping_with_a_zero_or_negative_id_is_a_400_naming_the_field() {
    let s = Setup::new().await;
    let (pid, did) = (s.pid(), s.did());
    s.reject_mapping_body(
        "patient 0",
        bytes(&json!({"patient": 0, "doctor": did})),
        field("patient"),
    )
    .await;
    s.reject_mapping_body(
        "doctor -1",
        bytes(&json!({"patient": pid, "doctor": -1})),
        field("doctor"),
    )
    .await;
    s.reject_mapping_body(
        "doctor that does not exist",
        bytes(&json!({"patient": pid, "doctor": i64::MAX})),
        field("doctor"),
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_mapping_is_a_409_and_adds_no_row() {
    let s = Setup::new().await;
    let body = json!({"patient": s.pid(), "doctor": s.did()});
    let first = s
        .app
        .post("/api/mappings/", Some(&s.user.access), body.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    s.reject_mapping_body("the same pair again", bytes(&body), problem(409))
        .await;
    assert_eq!(s.app.mapping_rows(s.pid()).await.len(), 1);
}
