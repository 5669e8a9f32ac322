//! Doctors are a shared directory: everyone reads them, only their creator
//! (or an administrator) changes or deletes them. Deleting keeps the row,
//! hidden (with its mappings) until an administrator restores it.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Select,
};

use super::history::NewVersion;
use super::{Listed, Page, Sort, Write, contains_ci, sorted};
use crate::domain::audit::{Change, Resource};
use crate::domain::{
    DoctorName, NameSearch, Principal, Specialization, SpecializationSearch, fold_case,
};
use crate::entity::doctor;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error("version mismatch")]
    Stale,
    /// Restore of a doctor that is not deleted.
    #[error("not deleted")]
    NotDeleted,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A doctor's client-set fields.
#[derive(Debug, Clone)]
pub struct DoctorFields {
    pub name: DoctorName,
    pub specialization: Specialization,
}

/// A partial change (JSON merge patch): `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DoctorChanges {
    pub name: Option<DoctorName>,
    pub specialization: Option<Specialization>,
}

impl From<DoctorFields> for DoctorChanges {
    fn from(fields: DoctorFields) -> Self {
        Self {
            name: Some(fields.name),
            specialization: Some(fields.specialization),
        }
    }
}

/// Who may change or delete a doctor: its creator or an administrator.
pub fn may_change(principal: &Principal, doctor: &doctor::Model) -> bool {
    principal.may_access(doctor.created_by)
}

fn live() -> Select<doctor::Entity> {
    doctor::Entity::find().filter(doctor::Column::DeletedAt.is_null())
}

fn version_of(row: &doctor::Model) -> NewVersion<'_, doctor::Model> {
    NewVersion {
        resource: Resource::Doctor,
        id: row.id,
        version: row.version,
        owner: Some(row.created_by),
        row,
    }
}

pub async fn create(
    db: &DatabaseConnection,
    write: Write<'_>,
    owner: i64,
    fields: DoctorFields,
) -> Result<doctor::Model, DbErr> {
    let now = super::now();
    let txn = super::begin_write(db).await?;
    let row = doctor::ActiveModel {
        name_key: Set(fold_case(fields.name.as_str())),
        name: Set(fields.name.into_string()),
        specialization_key: Set(fold_case(fields.specialization.as_str())),
        specialization: Set(fields.specialization.into_string()),
        created_by: Set(owner),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    write
        .record(&txn, Change::Created, version_of(&row))
        .await?;
    txn.commit().await?;
    Ok(row)
}

/// Filters of the doctor list; `None` means "any".
#[derive(Debug, Clone)]
pub struct DoctorFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<NameSearch>,
    /// Case-insensitive exact specialization.
    pub specialization: Option<SpecializationSearch>,
    /// Deleted doctors instead of live ones (administrators only).
    pub deleted: bool,
    pub sort: Sort<doctor::Column>,
    /// The ordering as the client wrote it, `None` for the default.
    pub ordering: Option<&'static str>,
}

impl Default for DoctorFilter {
    fn default() -> Self {
        Self {
            search: None,
            specialization: None,
            deleted: false,
            sort: Sort {
                column: doctor::Column::Id,
                descending: false,
            },
            ordering: None,
        }
    }
}

impl DoctorFilter {
    /// The filter as query parameters, for the `Link` of its pages.
    pub fn query_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(s) = &self.search {
            params.push(("search", s.as_str().to_string()));
        }
        if let Some(s) = &self.specialization {
            params.push(("specialization", s.as_str().to_string()));
        }
        if self.deleted {
            params.push(("deleted", "true".to_string()));
        }
        if let Some(ordering) = self.ordering {
            params.push(("ordering", ordering.to_string()));
        }
        params
    }
}

pub async fn list(
    db: &DatabaseConnection,
    filter: &DoctorFilter,
    page: Page,
) -> Result<Listed<doctor::Model>, DbErr> {
    let mut query = if filter.deleted {
        doctor::Entity::find().filter(doctor::Column::DeletedAt.is_not_null())
    } else {
        live()
    };
    if let Some(term) = &filter.search {
        query = query.filter(contains_ci(doctor::Column::NameKey, term.as_str(), true));
    }
    if let Some(specialization) = &filter.specialization {
        query =
            query.filter(doctor::Column::SpecializationKey.eq(fold_case(specialization.as_str())));
    }
    super::counted_page(db, query, page, |q| {
        sorted(q, filter.sort, doctor::Column::Id)
    })
    .await
}

/// A live doctor.
pub async fn get<C: sea_orm::ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<Option<doctor::Model>, DbErr> {
    live().filter(doctor::Column::Id.eq(id)).one(db).await
}

/// A doctor, deleted or not.
pub async fn get_any(db: &DatabaseConnection, id: i64) -> Result<Option<doctor::Model>, DbErr> {
    doctor::Entity::find_by_id(id).one(db).await
}

/// Checks the caller may change the doctor and that it is still at
/// `if_version`.
async fn check_change(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<(), ChangeError> {
    let current = get(db, id).await?.ok_or(ChangeError::NotFound)?;
    if !may_change(principal, &current) {
        return Err(ChangeError::Forbidden);
    }
    if if_version.is_some_and(|v| v != current.version) {
        return Err(ChangeError::Stale);
    }
    Ok(())
}

async fn gone_or_stale(db: &DatabaseConnection, id: i64) -> ChangeError {
    match get(db, id).await {
        Ok(Some(_)) => ChangeError::Stale,
        Ok(None) => ChangeError::NotFound,
        Err(err) => ChangeError::Db(err),
    }
}

/// The update statement shared by changes and deletion: bumps the version,
/// guarded by `if_version`.
fn change_statement(id: i64, if_version: Option<i64>) -> sea_orm::UpdateMany<doctor::Entity> {
    let mut update = bump(id).filter(doctor::Column::DeletedAt.is_null());
    if let Some(version) = if_version {
        update = update.filter(doctor::Column::Version.eq(version));
    }
    update
}

/// A new version of doctor `id`.
fn bump(id: i64) -> sea_orm::UpdateMany<doctor::Entity> {
    doctor::Entity::update_many()
        .col_expr(doctor::Column::UpdatedAt, Expr::value(super::now()))
        .col_expr(
            doctor::Column::Version,
            Expr::col(doctor::Column::Version).add(1),
        )
        .filter(doctor::Column::Id.eq(id))
}

pub async fn update(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
    changes: DoctorChanges,
    if_version: Option<i64>,
) -> Result<doctor::Model, ChangeError> {
    check_change(db, principal, id, if_version).await?;
    // `created_by` never changes, so the permission checked above still
    // holds; only the version can have moved on since.
    let mut update = change_statement(id, if_version);
    if let Some(name) = changes.name {
        update = update.col_expr(
            doctor::Column::NameKey,
            Expr::value(fold_case(name.as_str())),
        );
        update = update.col_expr(doctor::Column::Name, Expr::value(name.into_string()));
    }
    if let Some(specialization) = changes.specialization {
        update = update.col_expr(
            doctor::Column::SpecializationKey,
            Expr::value(fold_case(specialization.as_str())),
        );
        update = update.col_expr(
            doctor::Column::Specialization,
            Expr::value(specialization.into_string()),
        );
    }
    match write.apply(db, update, Change::Updated, version_of).await? {
        Some(row) => Ok(row),
        None => Err(gone_or_stale(db, id).await),
    }
}

/// Deletes the doctor: kept, hidden with its mappings, until restored.
pub async fn delete(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<(), ChangeError> {
    check_change(db, principal, id, if_version).await?;
    let delete = change_statement(id, if_version)
        .col_expr(doctor::Column::DeletedAt, Expr::value(super::now()));
    match write.apply(db, delete, Change::Deleted, version_of).await? {
        Some(_) => Ok(()),
        None => Err(gone_or_stale(db, id).await),
    }
}

/// Brings a deleted doctor back, with a new version; its mappings come
/// back with it. Administrators only.
pub async fn restore(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
) -> Result<doctor::Model, ChangeError> {
    let Some(current) = get_any(db, id).await? else {
        return Err(ChangeError::NotFound);
    };
    if !principal.is_staff {
        return Err(ChangeError::Forbidden);
    }
    if current.deleted_at.is_none() {
        return Err(ChangeError::NotDeleted);
    }
    let restore = bump(id)
        .col_expr(
            doctor::Column::DeletedAt,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .filter(doctor::Column::DeletedAt.is_not_null());
    write
        .apply(db, restore, Change::Restored, version_of)
        .await?
        .ok_or(ChangeError::NotDeleted)
}
