//! `/api/patients/`: the caller's patient records.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;

use super::body::{Fields, FromJson, JsonBody};
use super::doctors::Doctor;
use super::{ApiTags, JsonOut, etag, if_match_version, link_header, ordering, page};
use crate::auth::BearerAuth;
use crate::domain::{AGE_MAX, Gender, PATIENT_NAME_MAX, PatientChanges, PatientFields};
use crate::entity::patient;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::patients::{self, ChangeError, PatientFilter};
use crate::store::{self, mappings};

const KIND: &str = "patient";
const READ_ONLY: &[&str] = &["id", "created_by", "created_at", "updated_at"];
const GENDERS: [&str; 4] = ["Male", "Female", "Other", "Unknown"];

/// A patient record.
#[derive(Object, Debug, Clone, serde::Serialize)]
#[oai(example)]
pub struct Patient {
    /// Server-assigned id.
    #[oai(read_only)]
    pub id: i64,
    /// Full name, 1 to 200 characters.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Age in years.
    #[oai(validator(minimum(value = "0"), maximum(value = "150")))]
    pub age: i32,
    #[serde(serialize_with = "crate::domain::serialize_gender")]
    pub gender: Gender,
    /// Id of the user who created (and owns) this record.
    #[oai(read_only)]
    pub created_by: i64,
    #[oai(read_only)]
    #[serde(serialize_with = "super::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[oai(read_only)]
    #[serde(serialize_with = "super::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Example for Patient {
    fn example() -> Self {
        let at = DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        Self {
            id: 1,
            name: "Alice".into(),
            age: 30,
            gender: Gender::Female,
            created_by: 1,
            created_at: at,
            updated_at: at,
        }
    }
}

impl From<patient::Model> for Patient {
    fn from(row: patient::Model) -> Self {
        Self {
            id: row.id,
            gender: Gender::parse(&row.gender).unwrap_or(Gender::Unknown),
            name: row.name,
            age: row.age,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The fields a client sets on a patient. Read-only fields (`id`,
/// `created_by`, `created_at`, `updated_at`) may be sent back and are ignored;
/// any other unknown field is a 400.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct PatientInput {
    /// Full name, 1 to 200 characters after trimming, no control characters.
    #[oai(validator(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,198}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub name: String,
    /// Age in years, 0 to 150.
    #[oai(validator(minimum(value = "0"), maximum(value = "150")))]
    pub age: i32,
    pub gender: Gender,
}

impl Example for PatientInput {
    fn example() -> Self {
        Self {
            name: "Alice".into(),
            age: 30,
            gender: Gender::Female,
        }
    }
}

impl FromJson for PatientInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        f.ignore(READ_ONLY);
        let name = f.string("name", PATIENT_NAME_MAX);
        let age = f.integer("age", 0, AGE_MAX);
        let gender = f.choice("gender", Gender::parse, &GENDERS);
        Some(Self {
            name: name?,
            age: i32::try_from(age?).ok()?,
            gender: gender?,
        })
    }
}

/// A JSON merge patch (RFC 7396) of a patient: only the fields present change.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct PatientPatch {
    /// Full name, 1 to 200 characters after trimming, no control characters.
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,198}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
        )
    )]
    pub name: Option<String>,
    /// Age in years, 0 to 150.
    #[oai(
        skip_serializing_if_is_none,
        validator(minimum(value = "0"), maximum(value = "150"))
    )]
    pub age: Option<i32>,
    #[oai(skip_serializing_if_is_none)]
    pub gender: Option<Gender>,
}

impl Example for PatientPatch {
    fn example() -> Self {
        Self {
            name: None,
            age: Some(31),
            gender: None,
        }
    }
}

impl FromJson for PatientPatch {
    fn from_json(f: &mut Fields) -> Option<Self> {
        f.ignore(READ_ONLY);
        let name = f.opt_string("name", PATIENT_NAME_MAX);
        let age = f
            .opt_integer("age", 0, AGE_MAX)
            .and_then(|a| i32::try_from(a).ok());
        let gender = f.opt_choice("gender", Gender::parse, &GENDERS);
        Some(Self { name, age, gender })
    }
}

ordering! {
    /// Sort order of the patient list: a field, `-` first for descending.
    PatientOrdering for patient::Column {
        Id = "id", IdDesc = "-id" => patient::Column::Id;
        Name = "name", NameDesc = "-name" => patient::Column::Name;
        Age = "age", AgeDesc = "-age" => patient::Column::Age;
        CreatedAt = "created_at", CreatedAtDesc = "-created_at" => patient::Column::CreatedAt;
        UpdatedAt = "updated_at", UpdatedAtDesc = "-updated_at" => patient::Column::UpdatedAt;
    }
}

#[derive(ApiResponse)]
pub enum PatientCreated {
    /// The new patient.
    #[oai(status = 201)]
    Created(
        JsonOut<Patient>,
        /// URL of the new patient.
        #[oai(header = "Location")]
        String,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
pub enum PatientOk {
    /// The patient.
    #[oai(status = 200)]
    Ok(JsonOut<Patient>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum PatientList {
    /// One page of patients, ordered by id.
    #[oai(status = 200)]
    Ok(
        JsonOut<Vec<Patient>>,
        /// Number of patients in the whole list.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum DoctorList {
    /// The doctors assigned to the patient.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Doctor>>,
        #[oai(header = "X-Total-Count")] u64,
        #[oai(header = "Link")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

fn ok(row: patient::Model) -> PatientOk {
    let tag = etag(KIND, row.id, row.version);
    PatientOk::Ok(JsonOut(row.into()), tag)
}

fn change_error(err: ChangeError) -> ApiError {
    match err {
        ChangeError::NotFound => ApiError::not_found("Patient"),
        ChangeError::Stale => ApiError::precondition_failed(),
        ChangeError::Db(e) => e.into(),
    }
}

pub struct PatientsApi {
    pub db: DatabaseConnection,
}

#[OpenApi(tag = "ApiTags::Patients")]
impl PatientsApi {
    /// Create a patient
    ///
    /// Creates a patient owned by the caller. Answers 201 with the patient,
    /// its URL in `Location` and its `ETag`.
    #[oai(
        path = "/api/patients",
        method = "post",
        operation_id = "create_patient"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        body: JsonBody<PatientInput>,
    ) -> Res<PatientCreated, { AUTHED | BODY }> {
        let input = body.0;
        let fields = PatientFields {
            name: input.name,
            age: input.age,
            gender: input.gender,
        };
        let row = patients::create(&self.db, auth.0.user_id, fields).await?;
        let location = format!("/api/patients/{}/", row.id);
        let tag = etag(KIND, row.id, row.version);
        Ok(PatientCreated::Created(JsonOut(row.into()), location, tag))
    }

    /// List patients
    ///
    /// The caller's patients (every patient for administrators) as a plain
    /// JSON array. Filter with `search` (name, case-insensitive substring),
    /// `gender`, `min_age` and `max_age`; sort with `ordering` (default
    /// `id`); paginate with `limit` and `offset`. The total is in
    /// `X-Total-Count` and the neighbouring pages in `Link`.
    #[oai(path = "/api/patients", method = "get", operation_id = "list_patients")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: BearerAuth,
        /// Only patients whose name contains this text (case-insensitive).
        #[oai(validator(max_length = 200))]
        search: Query<Option<String>>,
        /// Only patients of this gender.
        gender: Query<Option<Gender>>,
        /// Only patients at least this old.
        #[oai(validator(minimum(value = "0"), maximum(value = "150")))]
        min_age: Query<Option<i32>>,
        /// Only patients at most this old.
        #[oai(validator(minimum(value = "0"), maximum(value = "150")))]
        max_age: Query<Option<i32>>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: Query<Option<PatientOrdering>>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<PatientList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit.0, offset.0)?;
        let search = search
            .0
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let mut filters = Vec::new();
        if let Some(s) = &search {
            filters.push(("search", s.clone()));
        }
        if let Some(g) = gender.0 {
            filters.push(("gender", g.as_str().to_string()));
        }
        if let Some(a) = min_age.0 {
            filters.push(("min_age", a.to_string()));
        }
        if let Some(a) = max_age.0 {
            filters.push(("max_age", a.to_string()));
        }
        let ordering = ordering.0.unwrap_or(PatientOrdering::Id);
        if ordering != PatientOrdering::Id {
            filters.push(("ordering", ordering.as_str().to_string()));
        }
        let filter = PatientFilter {
            search,
            gender: gender.0,
            min_age: min_age.0,
            max_age: max_age.0,
            sort: ordering.sort(),
        };
        let listed = store::patients::list(&self.db, &auth.0, &filter, page).await?;
        let link = link_header("/api/patients/", &filters, page, listed.total);
        let items = listed.items.into_iter().map(Patient::from).collect();
        Ok(PatientList::Ok(JsonOut(items), listed.total, link))
    }

    /// Get a patient
    ///
    /// 404 when the patient does not exist or belongs to someone else.
    #[oai(
        path = "/api/patients/:id",
        method = "get",
        operation_id = "get_patient"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> Res<PatientOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        match patients::get(&self.db, &auth.0, id.0).await? {
            Some(row) => Ok(ok(row)),
            None => Err(ApiError::not_found("Patient").into()),
        }
    }

    /// Replace a patient
    ///
    /// Replaces every client-set field. Read-only fields in the body are
    /// ignored, so a client can GET a patient, change it and PUT it back.
    /// Send the `ETag` in `If-Match` to refuse (412) if someone else changed
    /// it in between.
    #[oai(
        path = "/api/patients/:id",
        method = "put",
        operation_id = "update_patient"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The patient's `ETag`; the update is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<PatientInput>,
    ) -> Res<PatientOk, { AUTHED | BODY | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        let input = body.0;
        let changes = PatientChanges {
            name: Some(input.name),
            age: Some(input.age),
            gender: Some(input.gender),
        };
        let row = patients::update(&self.db, &auth.0, id.0, changes, version)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Change some fields of a patient
    ///
    /// A JSON merge patch: fields that are absent stay as they are; `null`
    /// is refused because every field is required.
    #[oai(
        path = "/api/patients/:id",
        method = "patch",
        operation_id = "patch_patient"
    )]
    async fn patch(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The patient's `ETag`; the change is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<PatientPatch>,
    ) -> Res<PatientOk, { AUTHED | BODY | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        let input = body.0;
        let changes = PatientChanges {
            name: input.name,
            age: input.age,
            gender: input.gender,
        };
        let row = patients::update(&self.db, &auth.0, id.0, changes, version)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Delete a patient
    ///
    /// Deletes the patient and its doctor assignments.
    #[oai(
        path = "/api/patients/:id",
        method = "delete",
        operation_id = "delete_patient"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The patient's `ETag`; the delete is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        patients::delete(&self.db, &auth.0, id.0, version)
            .await
            .map_err(change_error)?;
        Ok(Deleted::NoContent)
    }

    /// List a patient's doctors
    ///
    /// The doctors assigned to one of the caller's patients.
    #[oai(
        path = "/api/patients/:id/doctors",
        method = "get",
        operation_id = "list_patient_doctors"
    )]
    async fn doctors(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<DoctorList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let page = page(limit.0, offset.0)?;
        let listed = mappings::list_for_patient(&self.db, &auth.0, id.0, page)
            .await?
            .ok_or_else(|| ApiError::not_found("Patient"))?;
        let link = link_header(
            &format!("/api/patients/{}/doctors/", id.0),
            &[],
            page,
            listed.total,
        );
        let items = listed
            .items
            .into_iter()
            .map(|(_, d)| Doctor::from(d))
            .collect();
        Ok(DoctorList::Ok(Json(items), listed.total, link))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    /// `JsonOut` writes with serde what `Json` would write with `ToJSON`.
    #[test]
    fn serde_output_equals_the_schema_types_json() {
        let at = DateTime::<Utc>::from_timestamp(1_764_000_000, 123_456_000).unwrap_or_default();
        for gender in Gender::ALL {
            let patient = Patient {
                id: 7,
                name: "Zoë \"Quote\" O'Neil".into(),
                age: 0,
                gender,
                created_by: 3,
                created_at: at,
                updated_at: at + chrono::Duration::microseconds(1),
            };
            let via_serde = serde_json::to_value(&patient).expect("serialize");
            assert_eq!(Some(via_serde), patient.to_json());
            let list = vec![patient.clone(), patient];
            assert_eq!(
                Some(serde_json::to_value(&list).expect("serialize")),
                list.to_json()
            );
        }
    }
}
