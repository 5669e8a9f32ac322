//! `/api/patients/`: the caller's patient records and their history.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::audited::*;
use super::body::{JsonBody, input};
use super::doctors::Doctor;
use super::idempotency::Once;
use super::params::{HeaderArg, Path, QueryArg};
use super::schema::Text;
use super::security::Auth;
use super::versions::{self, Version};
use super::{ApiTags, IfMatch, JsonOut, etag, link_header, ordering, page, required_version};
use crate::domain::audit::Resource;
use crate::domain::{Age, Gender, IdempotencyKey, Limit, NameSearch, Offset, PatientName, Scope};
use crate::entity::patient;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::mappings;
use crate::store::patients::{self, ChangeError, PatientChanges, PatientFields, PatientFilter};

const KIND: &str = "patient";
const READ_ONLY: &[&str] = &["id", "created_by", "created_at", "updated_at"];

/// A patient record.
#[derive(Object, Debug, Clone, serde::Serialize)]
#[oai(example)]
pub struct Patient {
    /// Server-assigned id.
    #[oai(read_only)]
    pub id: i64,
    /// Full name.
    pub name: Text<{ PatientName::MAX_CHARS }>,
    /// Age in years.
    pub age: Age,
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
            name: Text("Alice".into()),
            age: Age::clamped(30),
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
            name: Text(row.name),
            age: Age::clamped(row.age),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

input! {
    /// The fields a client sets on a patient. Read-only fields (`id`,
    /// `created_by`, `created_at`, `updated_at`) may be sent back and are
    /// ignored; any other unknown field is a 400.
    pub struct PatientInput ignoring READ_ONLY, example json!({"name": "Alice", "age": 30, "gender": "Female"}) => {
        /// Full name (surrounding whitespace is trimmed).
        required name: PatientName,
        /// Age in years.
        required age: Age,
        required gender: Gender,
    }
}

input! {
    /// A JSON merge patch (RFC 7396) of a patient: only the fields present
    /// change; `null` is refused because every field is required.
    pub struct PatientPatch ignoring READ_ONLY, example json!({"age": 31}) => {
        /// Full name (surrounding whitespace is trimmed).
        optional name: PatientName,
        /// Age in years.
        optional age: Age,
        optional gender: Gender,
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
    /// The new patient (or, for a replayed `Idempotency-Key`, the patient
    /// as the first request created it).
    #[oai(status = 201)]
    Created(
        JsonOut<Patient>,
        /// URL of the new patient.
        #[oai(header = "Location")]
        String,
        #[oai(header = "ETag")] String,
        /// `true` when this is the replay of an earlier request with the
        /// same `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub enum PatientOk {
    /// The patient.
    #[oai(status = 200)]
    Ok(
        JsonOut<Patient>,
        #[oai(header = "ETag")] String,
        /// `true` when this is the replay of an earlier request with the
        /// same `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub enum PatientList {
    /// One page of patients, in the requested `ordering` (by id by default).
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
    /// The doctors assigned to the patient, by mapping id.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Doctor>>,
        /// Number of doctors assigned.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum VersionList {
    /// One page of the patient's versions, newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Version<Patient>>>,
        /// Number of versions.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum VersionOk {
    /// The version.
    #[oai(status = 200)]
    Ok(Json<Version<Patient>>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Done; there is no content to return.
    #[oai(status = 204)]
    NoContent,
}

fn ok(row: patient::Model) -> PatientOk {
    let tag = etag(KIND, row.id, row.version);
    PatientOk::Ok(JsonOut(row.into()), tag, None)
}

fn change_error(err: ChangeError) -> ApiError {
    match err {
        ChangeError::NotFound => ApiError::not_found("Patient"),
        ChangeError::Stale => ApiError::precondition_failed(),
        ChangeError::Forbidden => ApiError::forbidden("Only administrators may do this."),
        ChangeError::NotDeleted => ApiError::conflict(
            Default::default(),
            "This patient is not deleted; there is nothing to restore.",
        ),
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
        operation_id = "create_patient",
        transform = "audit_patient_create"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        #[oai(name = "Idempotency-Key")] key: HeaderArg<IdempotencyKey>,
        req: &poem::Request,
        body: JsonBody<PatientInput>,
    ) -> Res<PatientCreated, { AUTHED | BODY | CONFLICT | UNPROCESSABLE }> {
        let caller = auth.0;
        let JsonBody(input, body) = body;
        let fields = PatientFields {
            name: input.name,
            age: input.age,
            gender: input.gender,
        };
        let once = Once {
            db: &self.db,
            caller: &caller,
            key: key.0,
            operation: "create_patient",
            target: 0,
            body,
            request: req,
        };
        let (row, replay): (patient::Model, _) = once
            .run(201, |write| async move {
                Ok(patients::create(&self.db, write, caller.principal.user_id, fields).await?)
            })
            .await?;
        let location = format!("/api/patients/{}/", row.id);
        let tag = etag(KIND, row.id, row.version);
        Ok(PatientCreated::Created(
            JsonOut(row.into()),
            location,
            tag,
            replay,
        ))
    }

    /// List patients
    ///
    /// The caller's patients (every patient for administrators) as a plain
    /// JSON array. Filter with `search` (name, case-insensitive substring),
    /// `gender`, `min_age` and `max_age`; sort with `ordering` (default
    /// `id`); paginate with `limit` and `offset`. The total is in
    /// `X-Total-Count` and the neighbouring pages in `Link`. Administrators
    /// list deleted patients with `deleted=true` (403 for anyone else).
    #[oai(
        path = "/api/patients",
        method = "get",
        operation_id = "list_patients",
        transform = "audit_patient_list"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        #[oai(scope = "Scope::PatientsRead")] auth: Auth,
        /// Only patients whose name contains this text (case-insensitive).
        search: QueryArg<Option<NameSearch>>,
        /// Only patients of this gender.
        gender: QueryArg<Gender>,
        /// Only patients at least this old.
        min_age: QueryArg<Age>,
        /// Only patients at most this old.
        max_age: QueryArg<Age>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: QueryArg<PatientOrdering>,
        /// Deleted patients instead of live ones (administrators only).
        deleted: QueryArg<bool>,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<PatientList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        let principal = &auth.0.principal;
        let deleted = deleted.0.unwrap_or(false);
        if deleted && !principal.is_staff {
            return Err(
                ApiError::forbidden("Only administrators may list deleted patients.").into(),
            );
        }
        let page = page(limit, offset);
        let (sort, ordering) = PatientOrdering::chosen(ordering.0);
        let filter = PatientFilter {
            search: search.0.flatten(),
            gender: gender.0,
            min_age: min_age.0,
            max_age: max_age.0,
            deleted,
            sort,
            ordering,
        };
        let listed = patients::list(&self.db, principal, &filter, page).await?;
        let link = link_header("/api/patients/", &filter.query_params(), page, listed.total);
        let items = listed.items.into_iter().map(Patient::from).collect();
        Ok(PatientList::Ok(JsonOut(items), listed.total, link))
    }

    /// Get a patient
    ///
    /// 404 when the patient does not exist, is deleted, or belongs to
    /// someone else.
    #[oai(
        path = "/api/patients/:id",
        method = "get",
        operation_id = "get_patient",
        transform = "audit_patient_read"
    )]
    async fn get(
        &self,
        #[oai(scope = "Scope::PatientsRead")] auth: Auth,
        /// The patient's id.
        id: Path,
    ) -> Res<PatientOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        match patients::get(&self.db, &auth.0.principal, id.0).await? {
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
        operation_id = "update_patient",
        transform = "audit_patient_update"
    )]
    async fn update(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        /// The patient's id.
        id: Path,
        /// The patient's `ETag`; the update is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
        body: JsonBody<PatientInput>,
    ) -> Res<PatientOk, { AUTHED | BODY | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
        let input = body.0;
        let fields = PatientFields {
            name: input.name,
            age: input.age,
            gender: input.gender,
        };
        let caller = &auth.0;
        let row = patients::update(
            &self.db,
            caller.write(200),
            &caller.principal,
            id.0,
            fields.into(),
            version,
        )
        .await
        .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Change some fields of a patient
    ///
    /// A JSON merge patch: fields that are absent stay as they are; `null`
    /// is refused because every field is required. Send the `ETag` in
    /// `If-Match` to refuse (412) if someone else changed it in between.
    #[oai(
        path = "/api/patients/:id",
        method = "patch",
        operation_id = "patch_patient",
        transform = "audit_patient_update"
    )]
    async fn patch(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        /// The patient's id.
        id: Path,
        /// The patient's `ETag`; the change is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
        #[oai(name = "Idempotency-Key")] key: HeaderArg<IdempotencyKey>,
        req: &poem::Request,
        body: JsonBody<PatientPatch>,
    ) -> Res<
        PatientOk,
        { AUTHED | BODY | CONFLICT | NOT_FOUND | PRECONDITION_FAILED | UNPROCESSABLE },
    > {
        let caller = auth.0;
        let JsonBody(input, body) = body;
        let changes = PatientChanges {
            name: input.name,
            age: input.age,
            gender: input.gender,
        };
        let once = Once {
            db: &self.db,
            caller: &caller,
            key: key.0,
            operation: "patch_patient",
            target: id.0,
            body,
            request: req,
        };
        let (row, replay): (patient::Model, _) = once
            .run(200, |write| async move {
                let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
                patients::update(&self.db, write, &caller.principal, id.0, changes, version)
                    .await
                    .map_err(change_error)
            })
            .await?;
        let tag = etag(KIND, row.id, row.version);
        Ok(PatientOk::Ok(JsonOut(row.into()), tag, replay))
    }

    /// Delete a patient
    ///
    /// The patient disappears from every read, list, count and mapping, but
    /// is kept: an administrator can list it (`deleted=true`), restore it,
    /// or erase it for good.
    #[oai(
        path = "/api/patients/:id",
        method = "delete",
        operation_id = "delete_patient",
        transform = "audit_patient_delete"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        /// The patient's id.
        id: Path,
        /// The patient's `ETag`; the delete is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
        let caller = &auth.0;
        patients::delete(
            &self.db,
            caller.write(204),
            &caller.principal,
            id.0,
            version,
        )
        .await
        .map_err(change_error)?;
        Ok(Deleted::NoContent)
    }

    /// List a patient's doctors
    ///
    /// The doctors assigned to one of the caller's patients; 404 when the
    /// patient does not exist, is deleted, or belongs to someone else.
    #[oai(
        path = "/api/patients/:id/doctors",
        method = "get",
        operation_id = "list_patient_doctors",
        transform = "audit_patient_read"
    )]
    async fn doctors(
        &self,
        #[oai(scope = "Scope::MappingsRead")] auth: Auth,
        /// The patient's id.
        id: Path,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<DoctorList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let page = page(limit, offset);
        let listed = mappings::list_for_patient(&self.db, &auth.0.principal, id.0, page)
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

    /// Restore a deleted patient
    ///
    /// Administrators only (403 for anyone else; 404 for someone else's
    /// patient). Brings the patient back as it was, with a new version, and
    /// its doctor assignments with it. 409 when it is not deleted.
    #[oai(
        path = "/api/patients/:id/restore",
        method = "post",
        operation_id = "restore_patient",
        transform = "audit_patient_restore"
    )]
    async fn restore(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        /// The patient's id.
        id: Path,
    ) -> Res<PatientOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND | CONFLICT }> {
        let caller = &auth.0;
        let row = patients::restore(&self.db, caller.write(200), &caller.principal, id.0)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Erase a patient for good
    ///
    /// A data subject's right to erasure: removes the patient, its doctor
    /// assignments and every version of both, deleted or not. Only the
    /// audit trail's metadata (who did what, when, to which id) remains.
    /// Administrators only (403 for anyone else; 404 for someone else's
    /// patient). Cannot be undone.
    #[oai(
        path = "/api/patients/:id/erase",
        method = "post",
        operation_id = "erase_patient",
        transform = "audit_patient_erase"
    )]
    async fn erase(
        &self,
        #[oai(scope = "Scope::PatientsWrite")] auth: Auth,
        /// The patient's id.
        id: Path,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        let caller = &auth.0;
        patients::erase(&self.db, caller.write(204), &caller.principal, id.0)
            .await
            .map_err(change_error)?;
        Ok(Deleted::NoContent)
    }

    /// A patient's history
    ///
    /// Every version of the patient, newest first: the whole record after
    /// each change, who made it, when and in which request. For the
    /// patient's owner (while it is not deleted) and administrators; 404
    /// for anyone else.
    #[oai(
        path = "/api/patients/:id/history",
        method = "get",
        operation_id = "list_patient_versions",
        transform = "audit_patient_history"
    )]
    async fn history(
        &self,
        #[oai(scope = "Scope::PatientsRead")] auth: Auth,
        /// The patient's id.
        id: Path,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<VersionList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        self.readable(&auth, id.0).await?;
        let page = page(limit, offset);
        let path = format!("/api/patients/{}/history/", id.0);
        let (items, total, link) = versions::page::<Patient, patient::Model>(
            &self.db,
            Resource::Patient,
            id.0,
            page,
            &path,
        )
        .await?;
        Ok(VersionList::Ok(Json(items), total, link))
    }

    /// One version of a patient
    ///
    /// The patient as it was after the change that made `version`. 404 as
    /// for the history, or when there is no such version.
    #[oai(
        path = "/api/patients/:id/history/:version",
        method = "get",
        operation_id = "get_patient_version",
        transform = "audit_patient_history"
    )]
    async fn version(
        &self,
        #[oai(scope = "Scope::PatientsRead")] auth: Auth,
        /// The patient's id.
        id: Path,
        /// The version number.
        version: Path,
    ) -> Res<VersionOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        self.readable(&auth, id.0).await?;
        let found =
            versions::one::<Patient, patient::Model>(&self.db, Resource::Patient, id.0, version.0)
                .await?;
        Ok(VersionOk::Ok(Json(found)))
    }
}

impl PatientsApi {
    /// Whether the caller may read the patient's history: its owner while
    /// it is live, administrators always (deleted included).
    async fn readable(&self, auth: &Auth, id: i64) -> Result<(), ApiError> {
        let principal = &auth.0.principal;
        let found = if principal.is_staff {
            patients::get_any(&self.db, principal, id).await?
        } else {
            patients::get(&self.db, principal, id).await?
        };
        found
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("Patient"))
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
                name: Text("Zoë \"Quote\" O'Neil".into()),
                age: Age::clamped(0),
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
