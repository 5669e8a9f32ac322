//! `/api/mappings/`: assigning doctors to the caller's patients.

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
use super::patients::Deleted;
use super::schema::RecordId;
use super::security::Auth;
use super::{ApiTags, link_header, ordering, page};
use crate::domain::{IdempotencyKey, Limit, Offset, Scope};
use crate::entity::mapping;
use crate::error::status::*;
use crate::error::{ApiError, FieldErrors, Res};
use crate::store::mappings::{self, CreateError, MappingFilter, Snapshot, WithDoctor};

/// A doctor assigned to a patient.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct Mapping {
    /// Server-assigned id (the one `DELETE /api/mappings/{id}/` takes).
    #[oai(read_only)]
    pub id: i64,
    /// The patient's id.
    pub patient: i64,
    /// The doctor's id.
    pub doctor: i64,
    /// The assigned doctor.
    #[oai(read_only)]
    pub doctor_detail: Doctor,
    #[oai(read_only)]
    pub created_at: DateTime<Utc>,
}

impl Example for Mapping {
    fn example() -> Self {
        let doctor = Doctor::example();
        Self {
            id: 1,
            patient: 1,
            doctor: doctor.id,
            created_at: doctor.created_at,
            doctor_detail: doctor,
        }
    }
}

impl From<WithDoctor> for Mapping {
    fn from((row, doctor): WithDoctor) -> Self {
        Self {
            id: row.id,
            patient: row.patient_id,
            doctor: row.doctor_id,
            doctor_detail: doctor.into(),
            created_at: row.created_at,
        }
    }
}

input! {
    /// Assign a doctor to one of the caller's patients.
    pub struct MappingInput ignoring &["id", "doctor_detail", "created_at"], example json!({"patient": 1, "doctor": 1}) => {
        /// Id of one of the caller's patients.
        required patient: RecordId,
        /// Id of a doctor.
        required doctor: RecordId,
    }
}

ordering! {
    /// Sort order of the mapping list: a field, `-` first for descending.
    MappingOrdering for mapping::Column {
        Id = "id", IdDesc = "-id" => mapping::Column::Id;
        CreatedAt = "created_at", CreatedAtDesc = "-created_at" => mapping::Column::CreatedAt;
    }
}

#[derive(ApiResponse)]
pub enum MappingCreated {
    /// The new mapping (or, for a replayed `Idempotency-Key`, the mapping
    /// as the first request created it).
    #[oai(status = 201)]
    Created(
        Json<Mapping>,
        /// URL of the patient's mappings.
        #[oai(header = "Location")]
        String,
        /// `true` when this is the replay of an earlier request with the
        /// same `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub enum MappingList {
    /// One page of mappings, in the requested `ordering` (by id by default).
    #[oai(status = 200)]
    Ok(
        Json<Vec<Mapping>>,
        /// Number of mappings in the whole list.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

pub struct MappingsApi {
    pub db: DatabaseConnection,
}

fn listed(
    listed: crate::store::Listed<WithDoctor>,
    path: &str,
    filters: &[(&str, String)],
    page: crate::domain::Page,
) -> MappingList {
    let link = link_header(path, filters, page, listed.total);
    let items = listed.items.into_iter().map(Mapping::from).collect();
    MappingList::Ok(Json(items), listed.total, link)
}

fn create_error(err: CreateError) -> ApiError {
    match err {
        CreateError::NoSuchPatient => ApiError::field("patient", "No such patient of yours."),
        CreateError::NoSuchDoctor => ApiError::field("doctor", "No such doctor."),
        CreateError::Duplicate => {
            let mut errors = FieldErrors::new();
            errors.insert(
                "non_field_errors".into(),
                vec!["The fields patient, doctor must make a unique set.".into()],
            );
            ApiError::conflict(errors, "This doctor is already assigned to this patient.")
        }
        CreateError::Db(e) => e.into(),
    }
}

#[OpenApi(tag = "ApiTags::Mappings")]
impl MappingsApi {
    /// Assign a doctor to a patient
    ///
    /// The patient must be one of the caller's (400 naming `patient`
    /// otherwise) and the doctor must exist (400 naming `doctor`). Assigning
    /// the same doctor to the same patient twice is a 409.
    #[oai(
        path = "/api/mappings",
        method = "post",
        operation_id = "assign_doctor",
        transform = "audit_mapping_create"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::MappingsWrite")] auth: Auth,
        #[oai(name = "Idempotency-Key")] key: HeaderArg<IdempotencyKey>,
        req: &poem::Request,
        body: JsonBody<MappingInput>,
    ) -> Res<MappingCreated, { AUTHED | BODY | CONFLICT | UNPROCESSABLE }> {
        let caller = auth.0;
        let JsonBody(input, body) = body;
        let once = Once {
            db: &self.db,
            caller: &caller,
            key: key.0,
            operation: "assign_doctor",
            target: 0,
            body,
            request: req,
        };
        let (made, replay): (Snapshot, _) = once
            .run(201, |write| async move {
                let (mapping, doctor_detail) = mappings::create(
                    &self.db,
                    write,
                    &caller.principal,
                    input.patient.0,
                    input.doctor.0,
                )
                .await
                .map_err(create_error)?;
                Ok(Snapshot {
                    mapping,
                    doctor_detail,
                })
            })
            .await?;
        let row: WithDoctor = (made.mapping, made.doctor_detail);
        let location = format!("/api/mappings/{}/", row.0.patient_id);
        Ok(MappingCreated::Created(Json(row.into()), location, replay))
    }

    /// List mappings
    ///
    /// The mappings of the caller's patients (all mappings for
    /// administrators), as a plain JSON array. Filter with `patient` and
    /// `doctor`; sort with `ordering` (default `id`); paginate with `limit`
    /// and `offset`.
    #[oai(
        path = "/api/mappings",
        method = "get",
        operation_id = "list_mappings",
        transform = "audit_mapping_list"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::MappingsRead")] auth: Auth,
        /// Only mappings of this patient id.
        patient: QueryArg<i64>,
        /// Only mappings of this doctor id.
        doctor: QueryArg<i64>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: QueryArg<MappingOrdering>,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<MappingList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit, offset);
        let (sort, ordering) = MappingOrdering::chosen(ordering.0);
        let filter = MappingFilter {
            patient: patient.0,
            doctor: doctor.0,
            sort,
            ordering,
        };
        let rows = mappings::list(&self.db, &auth.0.principal, &filter, page).await?;
        Ok(listed(rows, "/api/mappings/", &filter.query_params(), page))
    }

    /// List a patient's mappings
    ///
    /// **`id` is a patient id here** (the same URL takes a mapping id for
    /// DELETE, as in the original API). Answers the mappings of that patient,
    /// `[]` when it has none; 404 when the patient does not exist or is not
    /// the caller's.
    #[oai(
        path = "/api/mappings/:id",
        method = "get",
        operation_id = "list_patient_mappings",
        transform = "audit_patient_read"
    )]
    async fn for_patient(
        &self,
        #[oai(scope = "Scope::MappingsRead")] auth: Auth,
        /// For GET: the **patient** id.
        id: Path,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<MappingList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let page = page(limit, offset);
        let rows = mappings::list_for_patient(&self.db, &auth.0.principal, id.0, page)
            .await?
            .ok_or_else(|| ApiError::not_found("Patient"))?;
        Ok(listed(rows, &format!("/api/mappings/{}/", id.0), &[], page))
    }

    /// Remove a doctor from a patient
    ///
    /// **`id` is a mapping id here** (the same URL takes a patient id for
    /// GET). 404 when the mapping does not exist or its patient is not the
    /// caller's. The mapping is kept in the patient's history.
    #[oai(
        path = "/api/mappings/:id",
        method = "delete",
        operation_id = "unassign_doctor",
        transform = "audit_mapping_delete"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::MappingsWrite")] auth: Auth,
        /// For DELETE: the **mapping** id.
        id: Path,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let caller = &auth.0;
        if mappings::delete(&self.db, caller.write(204), &caller.principal, id.0).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::not_found("Mapping").into())
        }
    }
}
