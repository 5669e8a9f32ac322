//! `/api/doctors/`: the shared directory of doctors and their history.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::audited::*;
use super::body::{JsonBody, input};
use super::idempotency::Once;
use super::params::{HeaderArg, Path, QueryArg};
use super::patients::Deleted;
use super::schema::Text;
use super::security::Auth;
use super::versions::{self, Version};
use super::{ApiTags, IfMatch, etag, link_header, ordering, page, required_version};
use crate::domain::audit::Resource;
use crate::domain::{
    DoctorName, IdempotencyKey, Limit, NameSearch, Offset, Scope, Specialization,
    SpecializationSearch,
};
use crate::entity::doctor;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::doctors::{self, ChangeError, DoctorChanges, DoctorFields, DoctorFilter};

const KIND: &str = "doctor";
const READ_ONLY: &[&str] = &["id", "created_by", "created_at", "updated_at"];

/// A doctor in the shared directory.
#[derive(Object, Debug, Clone, Default, serde::Serialize)]
#[oai(example)]
pub struct Doctor {
    /// Server-assigned id.
    #[oai(read_only)]
    pub id: i64,
    /// Full name.
    pub name: Text<{ DoctorName::MAX_CHARS }>,
    /// Medical specialty.
    pub specialization: Text<{ Specialization::MAX_CHARS }>,
    /// Id of the user who created this entry (who may change or delete it).
    #[oai(read_only)]
    pub created_by: i64,
    #[oai(read_only)]
    #[serde(serialize_with = "super::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[oai(read_only)]
    #[serde(serialize_with = "super::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Example for Doctor {
    fn example() -> Self {
        let at = DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap_or_default();
        Self {
            id: 1,
            name: Text("Dr. Smith".into()),
            specialization: Text("Cardiology".into()),
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
            name: Text(row.name),
            specialization: Text(row.specialization),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

input! {
    /// The fields a client sets on a doctor. Read-only fields may be sent
    /// back and are ignored; any other unknown field is a 400.
    pub struct DoctorInput ignoring READ_ONLY, example json!({"name": "Dr. Smith", "specialization": "Cardiology"}) => {
        /// Full name (surrounding whitespace is trimmed).
        required name: DoctorName,
        /// Medical specialty (surrounding whitespace is trimmed).
        required specialization: Specialization,
    }
}

input! {
    /// A JSON merge patch (RFC 7396) of a doctor: only the fields present change.
    pub struct DoctorPatch ignoring READ_ONLY, example json!({"specialization": "Neurology"}) => {
        /// Full name (surrounding whitespace is trimmed).
        optional name: DoctorName,
        /// Medical specialty (surrounding whitespace is trimmed).
        optional specialization: Specialization,
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
    /// The new doctor (or, for a replayed `Idempotency-Key`, the doctor as
    /// the first request created it).
    #[oai(status = 201)]
    Created(
        Json<Doctor>,
        /// URL of the new doctor.
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
pub enum DoctorOk {
    /// The doctor.
    #[oai(status = 200)]
    Ok(
        Json<Doctor>,
        #[oai(header = "ETag")] String,
        /// `true` when this is the replay of an earlier request with the
        /// same `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub enum DoctorList {
    /// One page of doctors, in the requested `ordering` (by id by default).
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

#[derive(ApiResponse)]
pub enum VersionList {
    /// One page of the doctor's versions, newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<Version<Doctor>>>,
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
    Ok(Json<Version<Doctor>>),
}

fn ok(row: doctor::Model) -> DoctorOk {
    let tag = etag(KIND, row.id, row.version);
    DoctorOk::Ok(Json(row.into()), tag, None)
}

fn change_error(err: ChangeError) -> ApiError {
    match err {
        ChangeError::NotFound => ApiError::not_found("Doctor"),
        ChangeError::Forbidden => ApiError::forbidden(
            "Only the doctor's creator or an administrator may change or delete it.",
        ),
        ChangeError::Stale => ApiError::precondition_failed(),
        ChangeError::NotDeleted => ApiError::conflict(
            Default::default(),
            "This doctor is not deleted; there is nothing to restore.",
        ),
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
    #[oai(
        path = "/api/doctors",
        method = "post",
        operation_id = "create_doctor",
        transform = "audit_doctor_create"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::DoctorsWrite")] auth: Auth,
        #[oai(name = "Idempotency-Key")] key: HeaderArg<IdempotencyKey>,
        req: &poem::Request,
        body: JsonBody<DoctorInput>,
    ) -> Res<DoctorCreated, { AUTHED | BODY | CONFLICT | UNPROCESSABLE }> {
        let caller = auth.0;
        let JsonBody(input, body) = body;
        let fields = DoctorFields {
            name: input.name,
            specialization: input.specialization,
        };
        let once = Once {
            db: &self.db,
            caller: &caller,
            key: key.0,
            operation: "create_doctor",
            target: 0,
            body,
            request: req,
        };
        let (row, replay): (doctor::Model, _) = once
            .run(201, |write| async move {
                Ok(doctors::create(&self.db, write, caller.principal.user_id, fields).await?)
            })
            .await?;
        let location = format!("/api/doctors/{}/", row.id);
        let tag = etag(KIND, row.id, row.version);
        Ok(DoctorCreated::Created(
            Json(row.into()),
            location,
            tag,
            replay,
        ))
    }

    /// List doctors
    ///
    /// Every doctor in the directory, as a plain JSON array. Filter with
    /// `search` (name, case-insensitive substring) and `specialization`
    /// (case-insensitive exact match); sort with `ordering` (default `id`);
    /// paginate with `limit` and `offset`. The total is in `X-Total-Count`
    /// and the neighbouring pages in `Link`. Administrators list deleted
    /// doctors with `deleted=true` (403 for anyone else).
    #[oai(path = "/api/doctors", method = "get", operation_id = "list_doctors")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        #[oai(scope = "Scope::DoctorsRead")] auth: Auth,
        /// Only doctors whose name contains this text (case-insensitive).
        search: QueryArg<Option<NameSearch>>,
        /// Only doctors with this specialization (case-insensitive).
        specialization: QueryArg<Option<SpecializationSearch>>,
        /// Sort field, `-` first for descending (default `id`).
        ordering: QueryArg<DoctorOrdering>,
        /// Deleted doctors instead of live ones (administrators only).
        deleted: QueryArg<bool>,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<DoctorList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        let deleted = deleted.0.unwrap_or(false);
        if deleted && !auth.0.principal.is_staff {
            return Err(
                ApiError::forbidden("Only administrators may list deleted doctors.").into(),
            );
        }
        let page = page(limit, offset);
        let (sort, ordering) = DoctorOrdering::chosen(ordering.0);
        let filter = DoctorFilter {
            search: search.0.flatten(),
            specialization: specialization.0.flatten(),
            deleted,
            sort,
            ordering,
        };
        let listed = doctors::list(&self.db, &filter, page).await?;
        let link = link_header("/api/doctors/", &filter.query_params(), page, listed.total);
        let items = listed.items.into_iter().map(Doctor::from).collect();
        Ok(DoctorList::Ok(Json(items), listed.total, link))
    }

    /// Get a doctor
    ///
    /// Any authenticated user can read any doctor that is not deleted.
    #[oai(path = "/api/doctors/:id", method = "get", operation_id = "get_doctor")]
    async fn get(
        &self,
        #[oai(scope = "Scope::DoctorsRead")] _auth: Auth,
        /// The doctor's id.
        id: Path,
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
        operation_id = "update_doctor",
        transform = "audit_doctor_update"
    )]
    async fn update(
        &self,
        #[oai(scope = "Scope::DoctorsWrite")] auth: Auth,
        /// The doctor's id.
        id: Path,
        /// The doctor's `ETag`; the update is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
        body: JsonBody<DoctorInput>,
    ) -> Res<DoctorOk, { AUTHED | BODY | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
        let input = body.0;
        let fields = DoctorFields {
            name: input.name,
            specialization: input.specialization,
        };
        let caller = &auth.0;
        let row = doctors::update(
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

    /// Change some fields of a doctor
    ///
    /// A JSON merge patch: fields that are absent stay as they are. Only the
    /// doctor's creator or an administrator may do this.
    #[oai(
        path = "/api/doctors/:id",
        method = "patch",
        operation_id = "patch_doctor",
        transform = "audit_doctor_update"
    )]
    async fn patch(
        &self,
        #[oai(scope = "Scope::DoctorsWrite")] auth: Auth,
        /// The doctor's id.
        id: Path,
        /// The doctor's `ETag`; the change is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
        #[oai(name = "Idempotency-Key")] key: HeaderArg<IdempotencyKey>,
        req: &poem::Request,
        body: JsonBody<DoctorPatch>,
    ) -> Res<
        DoctorOk,
        { AUTHED | BODY | CONFLICT | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED | UNPROCESSABLE },
    > {
        let caller = auth.0;
        let JsonBody(input, body) = body;
        let changes = DoctorChanges {
            name: input.name,
            specialization: input.specialization,
        };
        let once = Once {
            db: &self.db,
            caller: &caller,
            key: key.0,
            operation: "patch_doctor",
            target: id.0,
            body,
            request: req,
        };
        let (row, replay): (doctor::Model, _) = once
            .run(200, |write| async move {
                let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
                doctors::update(&self.db, write, &caller.principal, id.0, changes, version)
                    .await
                    .map_err(change_error)
            })
            .await?;
        let tag = etag(KIND, row.id, row.version);
        Ok(DoctorOk::Ok(Json(row.into()), tag, replay))
    }

    /// Delete a doctor
    ///
    /// The doctor and its assignments to patients disappear from every read
    /// and list, but are kept: an administrator can list the doctor
    /// (`deleted=true`) and restore it. Only the doctor's creator or an
    /// administrator may do this.
    #[oai(
        path = "/api/doctors/:id",
        method = "delete",
        operation_id = "delete_doctor",
        transform = "audit_doctor_delete"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::DoctorsWrite")] auth: Auth,
        /// The doctor's id.
        id: Path,
        /// The doctor's `ETag`; the delete is refused with 412 when it is no longer current.
        #[oai(name = "If-Match")]
        if_match: HeaderArg<IfMatch>,
    ) -> Res<Deleted, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND | PRECONDITION_FAILED }> {
        let version = required_version(if_match.0.as_ref(), KIND, id.0)?;
        let caller = &auth.0;
        doctors::delete(
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

    /// Restore a deleted doctor
    ///
    /// Administrators only (403 otherwise). Brings the doctor back as it
    /// was, with a new version, and its assignments with it. 409 when it is
    /// not deleted.
    #[oai(
        path = "/api/doctors/:id/restore",
        method = "post",
        operation_id = "restore_doctor",
        transform = "audit_doctor_restore"
    )]
    async fn restore(
        &self,
        #[oai(scope = "Scope::DoctorsWrite")] auth: Auth,
        /// The doctor's id.
        id: Path,
    ) -> Res<DoctorOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND | CONFLICT }> {
        let caller = &auth.0;
        let row = doctors::restore(&self.db, caller.write(200), &caller.principal, id.0)
            .await
            .map_err(change_error)?;
        Ok(ok(row))
    }

    /// A doctor's history
    ///
    /// Every version of the doctor, newest first. Anyone may read a live
    /// doctor's history; a deleted doctor's only administrators (404
    /// otherwise).
    #[oai(
        path = "/api/doctors/:id/history",
        method = "get",
        operation_id = "list_doctor_versions",
        transform = "audit_doctor_history"
    )]
    async fn history(
        &self,
        #[oai(scope = "Scope::DoctorsRead")] auth: Auth,
        /// The doctor's id.
        id: Path,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<VersionList, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        self.readable(&auth, id.0).await?;
        let page = page(limit, offset);
        let path = format!("/api/doctors/{}/history/", id.0);
        let (items, total, link) =
            versions::page::<Doctor, doctor::Model>(&self.db, Resource::Doctor, id.0, page, &path)
                .await?;
        Ok(VersionList::Ok(Json(items), total, link))
    }

    /// One version of a doctor
    ///
    /// The doctor as it was after the change that made `version`. 404 as
    /// for the history, or when there is no such version.
    #[oai(
        path = "/api/doctors/:id/history/:version",
        method = "get",
        operation_id = "get_doctor_version",
        transform = "audit_doctor_history"
    )]
    async fn version(
        &self,
        #[oai(scope = "Scope::DoctorsRead")] auth: Auth,
        /// The doctor's id.
        id: Path,
        /// The version number.
        version: Path,
    ) -> Res<VersionOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        self.readable(&auth, id.0).await?;
        let found =
            versions::one::<Doctor, doctor::Model>(&self.db, Resource::Doctor, id.0, version.0)
                .await?;
        Ok(VersionOk::Ok(Json(found)))
    }
}

impl DoctorsApi {
    /// Whether the caller may read the doctor's history: anyone while it is
    /// live, administrators always.
    async fn readable(&self, auth: &Auth, id: i64) -> Result<(), ApiError> {
        let found = if auth.0.principal.is_staff {
            doctors::get_any(&self.db, id).await?
        } else {
            doctors::get(&self.db, id).await?
        };
        found
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("Doctor"))
    }
}
