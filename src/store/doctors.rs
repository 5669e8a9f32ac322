//! Doctors are a shared directory: everyone reads them, only their creator
//! (or an administrator) changes or deletes them.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect,
};

use super::{Listed, Page, Sort, contains_ci, sorted};
use crate::auth::Principal;
use crate::domain::{DoctorChanges, DoctorFields, fold_case};
use crate::entity::doctor;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("not found")]
    NotFound,
    #[error("not the creator")]
    Forbidden,
    #[error("version mismatch")]
    Stale,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Who may change or delete a doctor.
pub fn may_change(principal: &Principal, doctor: &doctor::Model) -> bool {
    principal.is_staff || doctor.created_by == principal.user_id
}

pub async fn create(
    db: &DatabaseConnection,
    owner: i64,
    fields: DoctorFields,
) -> Result<doctor::Model, DbErr> {
    let now = super::now();
    doctor::ActiveModel {
        name_key: Set(fold_case(&fields.name)),
        name: Set(fields.name),
        specialization_key: Set(fold_case(&fields.specialization)),
        specialization: Set(fields.specialization),
        created_by: Set(owner),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Filters of the doctor list; `None` means "any".
#[derive(Debug, Clone)]
pub struct DoctorFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Case-insensitive exact specialization.
    pub specialization: Option<String>,
    pub sort: Sort<doctor::Column>,
}

impl Default for DoctorFilter {
    fn default() -> Self {
        Self {
            search: None,
            specialization: None,
            sort: Sort {
                column: doctor::Column::Id,
                descending: false,
            },
        }
    }
}

pub async fn list(
    db: &DatabaseConnection,
    filter: &DoctorFilter,
    page: Page,
) -> Result<Listed<doctor::Model>, DbErr> {
    let mut query = doctor::Entity::find();
    if let Some(term) = &filter.search {
        query = query.filter(contains_ci(doctor::Column::NameKey, term, true));
    }
    if let Some(specialization) = &filter.specialization {
        query = query.filter(doctor::Column::SpecializationKey.eq(fold_case(specialization)));
    }
    let total = query.clone().count(db).await?;
    let items = sorted(query, filter.sort, doctor::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(db)
        .await?;
    Ok(Listed { items, total })
}

pub async fn get(db: &DatabaseConnection, id: i64) -> Result<Option<doctor::Model>, DbErr> {
    doctor::Entity::find_by_id(id).one(db).await
}

/// Checks the caller may change the doctor and that it is still at
/// `if_version`; returns it as it is now.
async fn check_change(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<doctor::Model, ChangeError> {
    let current = get(db, id).await?.ok_or(ChangeError::NotFound)?;
    if !may_change(principal, &current) {
        return Err(ChangeError::Forbidden);
    }
    if if_version.is_some_and(|v| v != current.version) {
        return Err(ChangeError::Stale);
    }
    Ok(current)
}

pub async fn update(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    changes: DoctorChanges,
    if_version: Option<i64>,
) -> Result<doctor::Model, ChangeError> {
    check_change(db, principal, id, if_version).await?;
    // `created_by` never changes, so the permission checked above still
    // holds; only the version can have moved on since.
    let mut update = doctor::Entity::update_many()
        .col_expr(doctor::Column::UpdatedAt, Expr::value(super::now()))
        .col_expr(
            doctor::Column::Version,
            Expr::col(doctor::Column::Version).add(1),
        )
        .filter(doctor::Column::Id.eq(id));
    if let Some(version) = if_version {
        update = update.filter(doctor::Column::Version.eq(version));
    }
    if let Some(name) = changes.name {
        update = update.col_expr(doctor::Column::NameKey, Expr::value(fold_case(&name)));
        update = update.col_expr(doctor::Column::Name, Expr::value(name));
    }
    if let Some(specialization) = changes.specialization {
        update = update.col_expr(
            doctor::Column::SpecializationKey,
            Expr::value(fold_case(&specialization)),
        );
        update = update.col_expr(doctor::Column::Specialization, Expr::value(specialization));
    }
    let mut rows = update.exec_with_returning(db).await?;
    match rows.pop() {
        Some(row) => Ok(row),
        None => Err(gone_or_stale(db, id).await),
    }
}

async fn gone_or_stale(db: &DatabaseConnection, id: i64) -> ChangeError {
    match get(db, id).await {
        Ok(Some(_)) => ChangeError::Stale,
        Ok(None) => ChangeError::NotFound,
        Err(err) => ChangeError::Db(err),
    }
}

/// Deletes the doctor (its mappings go with it, by foreign-key cascade).
pub async fn delete(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<(), ChangeError> {
    check_change(db, principal, id, if_version).await?;
    let mut delete = doctor::Entity::delete_many().filter(doctor::Column::Id.eq(id));
    if let Some(version) = if_version {
        delete = delete.filter(doctor::Column::Version.eq(version));
    }
    if delete.exec(db).await?.rows_affected == 1 {
        Ok(())
    } else {
        Err(gone_or_stale(db, id).await)
    }
}
