//! `/api/doctors/`: the shared directory of doctors.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;

use super::body::{Fields, FromJson, JsonBody};
use super::patients::Deleted;
use super::{ApiTags, etag, if_match_version, link_header, ordering, page};
use crate::auth::BearerAuth;
use crate::domain::{DOCTOR_NAME_MAX, DoctorChanges, DoctorFields, SPECIALIZATION_MAX};
use crate::entity::doctor;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::doctors::{self, ChangeError, DoctorFilter};

const KIND: &str = "doctor";
const READ_ONLY: &[&str] = &["id", "created_by", "created_at", "updated_at"];

/// A doctor in the shared directory.
#[derive(Object, Debug, Clone, Default)]
#[oai(example)]
pub struct Doctor {
    /// Server-assigned id.
    #[oai(read_only)]
    pub id: i64,
    /// Full name, 1 to 200 characters.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Medical specialty, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub specialization: String,
    /// Id of the user who created this entry (who may change or delete it).
    #[oai(read_only)]
    pub created_by: i64,
    #[oai(read_only)]
    pub created_at: DateTime<Utc>,
    #[oai(read_only)]
    pub updated_at: DateTime<Utc>,
}

impl Example for Doctor {
    fn example() -> Self {
        let at = DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        Self {
            id: 1,
            name: "Dr. Smith".into(),
            specialization: "Cardiology".into(),
            created_by: 1,
            created_at: at,
            updated_at: at,
        }
    }
}

impl From<doctor::Model> for Doctor {
    fn from(row: doctor::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            specialization: row.specialization,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The fields a client sets on a doctor. Read-only fields may be sent back
/// and are ignored; any other unknown field is a 400.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct DoctorInput {
    /// Full name, 1 to 200 characters after trimming, no control characters.
    #[oai(validator(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,198}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub name: String,
    /// Medical specialty, 1 to 100 characters after trimming, no control characters.
    #[oai(validator(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,98}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub specialization: String,
}

impl Example for DoctorInput {
    fn example() -> Self {
        Self {
            name: "Dr. Smith".into(),
            specialization: "Cardiology".into(),
        }
    }
}

impl FromJson for DoctorInput {
    fn from_json(f: &mut Fields) -> Option<Self> {
        f.ignore(READ_ONLY);
        let name = f.string("name", DOCTOR_NAME_MAX);
        let specialization = f.string("specialization", SPECIALIZATION_MAX);
        Some(Self {
            name: name?,
            specialization: specialization?,
        })
    }
}

/// A JSON merge patch (RFC 7396) of a doctor: only the fields present change.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct DoctorPatch {
    /// Full name, 1 to 200 characters after trimming, no control characters.
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,198}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
        )
    )]
    pub name: Option<String>,
    /// Medical specialty, 1 to 100 characters after trimming, no control characters.
    #[oai(
        skip_serializing_if_is_none,
        validator(
            min_length = 1,
            pattern = r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\x00-\x1F\x7F-\x9F]{0,98}[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
        )
    )]
    pub specialization: Option<String>,
}

impl Example for DoctorPatch {
    fn example() -> Self {
        Self {
            name: None,
            specialization: Some("Neurology".into()),
        }
    }
}

impl FromJson for DoctorPatch {
    fn from_json(f: &mut Fields) -> Option<Self> {
        f.ignore(READ_ONLY);
        let name = f.opt_string("name", DOCTOR_NAME_MAX);
        let specialization = f.opt_string("specialization", SPECIALIZATION_MAX);
        Some(Self {
            name,
            specialization,
        })
    }
}

ordering! {
    /// Sort order of the doctor list: a field, `-` first for descending.
    DoctorOrdering for doctor::Column {
        Id = "id", IdDesc = "-id" => doctor::Column::Id;
        Name = "name", NameDesc = "-name" => doctor::Column::Name;
        Specialization = "specialization", SpecializationDesc = "-specialization" => doctor::Column::Specialization;
        CreatedAt = "created_at", CreatedAtDesc = "-created_at" => doctor::Column::CreatedAt;
    }
}

#[derive(ApiResponse)]
pub enum DoctorCreated {
    /// The new doctor.
    #[oai(status = 201)]
    Created(
        Json<Doctor>,
        /// URL of the new doctor.
        #[oai(header = "Location")]
        String,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
pub enum DoctorOk {
    /// The doctor.
    #[oai(status = 200)]
    Ok(Json<Doctor>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum DoctorList {
    /// One page of doctors, ordered by id.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Doctor>>,
        /// Number of doctors in the whole list.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

fn ok(row: doctor::Model) -> DoctorOk {
    let tag = etag(KIND, row.id, row.version);
    DoctorOk::Ok(Json(row.into()), tag)
}

fn change_error(err: ChangeError) -> ApiError {
    match err {
        ChangeError::NotFound => ApiError::not_found("Doctor"),
        ChangeError::Forbidden => ApiError::forbidden(
            "Only the user who created this doctor, or an administrator, may change or delete it.",
        ),
        ChangeError::Stale => ApiError::precondition_failed(),
        ChangeError::Db(e) => e.into(),
    }
}

pub struct DoctorsApi {
    pub db: DatabaseConnection,
}

#[OpenApi(tag = "ApiTags::Doctors")]
impl DoctorsApi {
    /// Add a doctor
    ///
    /// Adds a doctor to the shared directory. The caller becomes its creator,
    /// the only user (besides administrators) who may change or delete it.
    #[oai(path = "/api/doctors", method = "post", operation_id = "create_doctor")]
    async fn create(
        &self,
        auth: BearerAuth,
        body: JsonBody<DoctorInput>,
    ) -> Res<DoctorCreated, { AUTHED | BODY }> {
        let input = body.0;
        let fields = DoctorFields {
            name: input.name,
            specialization: input.specialization,
        };
        let row = doctors::create(&self.db, auth.0.user_id, fields).await?;
        let location = format!("/api/doctors/{}/", row.id);
        let tag = etag(KIND, row.id, row.version);
        Ok(DoctorCreated::Created(Json(row.into()), location, tag))
    }

    /// List doctors
    ///
    /// Every doctor in the directory, as a plain JSON array. Filter with
    /// `search` (name, case-insensitive substring) and `specialization`
    /// (case-insensitive exact match); sort with `ordering` (default `id`);
    /// paginate with `limit` and `offset`. The total is in `X-Total-Count`
    /// and the neighbouring pages in `Link`.
    #[oai(path = "/api/doctors", method = "get", operation_id = "list_doctors")]
    async fn list(
        &self,
        _auth: BearerAuth,
        /// Only doctors whose name contains this text (case-insensitive).
        #[oai(validator(max_length = 200))]
        search: Query<Option<String>>,
        /// Only doctors with this specialization (case-insensitive).
        #[oai(validator(max_length = 100))]
        specialization: Query<Option<String>>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: Query<Option<DoctorOrdering>>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<DoctorList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit.0, offset.0)?;
        let trimmed = |q: Option<String>| q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let search = trimmed(search.0);
        let specialization = trimmed(specialization.0);
        let ordering = ordering.0.unwrap_or(DoctorOrdering::Id);
        let mut filters = Vec::new();
        if let Some(s) = &search {
            filters.push(("search", s.clone()));
        }
        if let Some(s) = &specialization {
            filters.push(("specialization", s.clone()));
        }
        if ordering != DoctorOrdering::Id {
            filters.push(("ordering", ordering.as_str().to_string()));
        }
        let filter = DoctorFilter {
            search,
            specialization,
            sort: ordering.sort(),
        };
        let listed = doctors::list(&self.db, &filter, page).await?;
        let link = link_header("/api/doctors/", &filters, page, listed.total);
        let items = listed.items.into_iter().map(Doctor::from).collect();
        Ok(DoctorList::Ok(Json(items), listed.total, link))
    }

    /// Get a doctor
    ///
    /// Any authenticated user can read any doctor.
    #[oai(path = "/api/doctors/:id", method = "get", operation_id = "get_doctor")]
    async fn get(
        &self,
        _auth: BearerAuth,
        id: Path<i64>,
    ) -> Res<DoctorOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        match doctors::get(&self.db, id.0).await? {
            Some(row) => Ok(ok(row)),
            None => Err(ApiError::not_found("Doctor").into()),
        }
    }

    /// Replace a doctor
    ///
    /// Only the doctor's creator or an administrator may do this (403
    /// otherwise). Read-only fields in the body are ignored.
    #[oai(
        path = "/api/doctors/:id",
        method = "put",
        operation_id = "update_doctor"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The doctor's `ETag`; the update is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<DoctorInput>,
    ) -> Res<DoctorOk, { AUTHED | BODY | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        let input = body.0;
        let changes = DoctorChanges {
            name: Some(input.name),
            specialization: Some(input.specialization),
        };
        let row = doctors::update(&self.db, &auth.0, id.0, changes, version)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Change some fields of a doctor
    ///
    /// A JSON merge patch: fields that are absent stay as they are. Only the
    /// doctor's creator or an administrator may do this.
    #[oai(
        path = "/api/doctors/:id",
        method = "patch",
        operation_id = "patch_doctor"
    )]
    async fn patch(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The doctor's `ETag`; the change is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<DoctorPatch>,
    ) -> Res<DoctorOk, { AUTHED | BODY | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        let input = body.0;
        let changes = DoctorChanges {
            name: input.name,
            specialization: input.specialization,
        };
        let row = doctors::update(&self.db, &auth.0, id.0, changes, version)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// Delete a doctor
    ///
    /// Deletes the doctor and its assignments to patients. Only the doctor's
    /// creator or an administrator may do this.
    #[oai(
        path = "/api/doctors/:id",
        method = "delete",
        operation_id = "delete_doctor"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
        /// The doctor's `ETag`; the delete is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = if_match_version(if_match.0.as_deref(), KIND, id.0)?;
        doctors::delete(&self.db, &auth.0, id.0, version)
            .await
            .map_err(change_error)?;
        Ok(Deleted::NoContent)
    }
}
