//! `/api/mappings/`: assigning doctors to the caller's patients.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;

use super::body::{Fields, FromJson, JsonBody};
use super::doctors::Doctor;
use super::patients::Deleted;
use super::{ApiTags, link_header, ordering, page};
use crate::auth::BearerAuth;
use crate::entity::mapping;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::mappings::{self, CreateError, MappingFilter, WithDoctor};

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

/// Assign a doctor to one of the caller's patients.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct MappingInput {
    /// Id of one of the caller's patients.
    #[oai(validator(minimum(value = "1")))]
    pub patient: i64,
    /// Id of a doctor.
    #[oai(validator(minimum(value = "1")))]
    pub doctor: i64,
}

impl Example for MappingInput {
    fn example() -> Self {
        Self {
            patient: 1,
            doctor: 1,
        }
    }
}

impl FromJson for MappingInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        f.ignore(&["id", "doctor_detail", "created_at"]);
        let patient = f.integer("patient", 1, i64::MAX);
        let doctor = f.integer("doctor", 1, i64::MAX);
        Some(Self {
            patient: patient?,
            doctor: doctor?,
        })
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
    /// The new mapping.
    #[oai(status = 201)]
    Created(
        Json<Mapping>,
        /// URL of the patient's mappings.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum MappingList {
    /// One page of mappings, ordered by id.
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
    page: crate::store::Page,
) -> MappingList {
    let link = link_header(path, filters, page, listed.total);
    let items = listed.items.into_iter().map(Mapping::from).collect();
    MappingList::Ok(Json(items), listed.total, link)
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
        operation_id = "assign_doctor"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        req: &poem::Request,
        body: JsonBody<MappingInput>,
    ) -> Res<MappingCreated, { AUTHED | BODY | CONFLICT }> {
        let input = body.0;
        let row = mappings::create(&self.db, &auth.0, input.patient, input.doctor)
            .await
            .map_err(|err| match err {
                CreateError::NoSuchPatient => {
                    ApiError::field("patient", "No such patient of yours.")
                }
                CreateError::NoSuchDoctor => ApiError::field("doctor", "No such doctor."),
                CreateError::Duplicate => {
                    let mut errors = crate::error::FieldErrors::new();
                    errors.insert(
                        "non_field_errors".into(),
                        vec!["The fields patient, doctor must make a unique set.".into()],
                    );
                    ApiError::conflict(errors, "This doctor is already assigned to this patient.")
                }
                CreateError::Db(e) => e.into(),
            })?;
        if let Some(audit) = req.data::<crate::audit::AuditContext>() {
            audit.set_resource(row.0.id);
        }
        let location = format!("/api/mappings/{}/", row.0.patient_id);
        Ok(MappingCreated::Created(Json(row.into()), location))
    }

    /// List mappings
    ///
    /// The mappings of the caller's patients (all mappings for
    /// administrators), as a plain JSON array. Filter with `patient` and
    /// `doctor`; sort with `ordering` (default `id`); paginate with `limit`
    /// and `offset`.
    #[oai(path = "/api/mappings", method = "get", operation_id = "list_mappings")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// Only mappings of this patient id.
        patient: Query<Option<i64>>,
        /// Only mappings of this doctor id.
        doctor: Query<Option<i64>>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: Query<Option<MappingOrdering>>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<MappingList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit.0, offset.0)?;
        let ordering = ordering.0.unwrap_or(MappingOrdering::Id);
        let mut filters = Vec::new();
        if let Some(p) = patient.0 {
            filters.push(("patient", p.to_string()));
        }
        if let Some(d) = doctor.0 {
            filters.push(("doctor", d.to_string()));
        }
        if ordering != MappingOrdering::Id {
            filters.push(("ordering", ordering.as_str().to_string()));
        }
        let filter = MappingFilter {
            patient: patient.0,
            doctor: doctor.0,
            sort: ordering.sort(),
        };
        let rows = mappings::list(&self.db, &auth.0, &filter, page).await?;
        Ok(listed(rows, "/api/mappings/", &filters, page))
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
        operation_id = "list_patient_mappings"
    )]
    async fn for_patient(
        &self,
        auth: BearerAuth,
        /// For GET: the **patient** id.
        id: Path<i64>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<MappingList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let page = page(limit.0, offset.0)?;
        let rows = mappings::list_for_patient(&self.db, &auth.0, id.0, page)
            .await?
            .ok_or_else(|| ApiError::not_found("Patient"))?;
        Ok(listed(rows, &format!("/api/mappings/{}/", id.0), &[], page))
    }

    /// Remove a doctor from a patient
    ///
    /// **`id` is a mapping id here** (the same URL takes a patient id for
    /// GET). 404 when the mapping does not exist or its patient is not the
    /// caller's.
    #[oai(
        path = "/api/mappings/:id",
        method = "delete",
        operation_id = "unassign_doctor"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        /// For DELETE: the **mapping** id.
        id: Path<i64>,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        if mappings::delete(&self.db, &auth.0, id.0).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::not_found("Mapping").into())
        }
    }
}
