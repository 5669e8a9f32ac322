//! Patients belong to the user who created them. Every query here is scoped
//! to the caller (administrators see all), so that another user's patient is
//! indistinguishable from one that does not exist. Deleting keeps the row,
//! hidden from every read, list and count; administrators can list deleted
//! patients, restore them, or erase them for good.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, QueryStatementBuilder, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryResult, QuerySelect, Select,
};

use super::history::NewVersion;
use super::{Listed, Page, Sort, Write, contains_ci, sorted};
use crate::domain::audit::{Action, Change, Resource};
use crate::domain::{Age, Gender, NameSearch, PatientName, Principal, fold_case};
use crate::entity::{mapping, patient, patient_count};

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("not found")]
    NotFound,
    #[error("version mismatch")]
    Stale,
    /// Restore or erase by someone who is not an administrator.
    #[error("administrators only")]
    Forbidden,
    /// Restore of a patient that is not deleted.
    #[error("not deleted")]
    NotDeleted,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A patient's client-set fields.
#[derive(Debug, Clone)]
pub struct PatientFields {
    pub name: PatientName,
    pub age: Age,
    pub gender: Gender,
}

/// A partial change (JSON merge patch): `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PatientChanges {
    pub name: Option<PatientName>,
    pub age: Option<Age>,
    pub gender: Option<Gender>,
}

impl From<PatientFields> for PatientChanges {
    fn from(fields: PatientFields) -> Self {
        Self {
            name: Some(fields.name),
            age: Some(fields.age),
            gender: Some(fields.gender),
        }
    }
}

/// The caller's patients, deleted ones excluded.
fn visible(principal: &Principal) -> Select<patient::Entity> {
    owned(principal).filter(patient::Column::DeletedAt.is_null())
}

/// The caller's patients, deleted or not.
fn owned(principal: &Principal) -> Select<patient::Entity> {
    let query = patient::Entity::find();
    match principal.owner_filter() {
        Some(owner) => query.filter(patient::Column::CreatedBy.eq(owner)),
        None => query,
    }
}

fn version_of(row: &patient::Model) -> NewVersion<'_, patient::Model> {
    NewVersion {
        resource: Resource::Patient,
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
    fields: PatientFields,
) -> Result<patient::Model, DbErr> {
    let now = super::now();
    let txn = super::begin_write(db).await?;
    let row = patient::ActiveModel {
        name_key: Set(fold_case(fields.name.as_str())),
        name: Set(fields.name.into_string()),
        age: Set(fields.age.years()),
        gender: Set(fields.gender.as_str().to_string()),
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

/// Filters of the patient list; `None` means "any".
#[derive(Debug, Clone)]
pub struct PatientFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<NameSearch>,
    pub gender: Option<Gender>,
    pub min_age: Option<Age>,
    pub max_age: Option<Age>,
    /// Deleted patients instead of live ones (administrators only).
    pub deleted: bool,
    pub sort: Sort<patient::Column>,
    /// The ordering as the client wrote it (`-age`), `None` for the default.
    pub ordering: Option<&'static str>,
}

impl Default for PatientFilter {
    fn default() -> Self {
        Self {
            search: None,
            gender: None,
            min_age: None,
            max_age: None,
            deleted: false,
            sort: Sort {
                column: patient::Column::Id,
                descending: false,
            },
            ordering: None,
        }
    }
}

impl PatientFilter {
    /// Whether anything narrows the list (then it is counted, not read from
    /// the per-owner counts).
    fn narrows(&self) -> bool {
        self.search.is_some()
            || self.gender.is_some()
            || self.min_age.is_some()
            || self.max_age.is_some()
            || self.deleted
    }

    /// The filter as query parameters, for the `Link` of its pages.
    pub fn query_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(s) = &self.search {
            params.push(("search", s.as_str().to_string()));
        }
        if let Some(g) = self.gender {
            params.push(("gender", g.as_str().to_string()));
        }
        if let Some(a) = self.min_age {
            params.push(("min_age", a.years().to_string()));
        }
        if let Some(a) = self.max_age {
            params.push(("max_age", a.years().to_string()));
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
    principal: &Principal,
    filter: &PatientFilter,
    page: Page,
) -> Result<Listed<patient::Model>, DbErr> {
    let mut query = if filter.deleted {
        owned(principal).filter(patient::Column::DeletedAt.is_not_null())
    } else {
        visible(principal)
    };
    if let Some(term) = &filter.search {
        query = query.filter(contains_ci(
            patient::Column::NameKey,
            term.as_str(),
            principal.owner_filter().is_none(),
        ));
    }
    if let Some(gender) = filter.gender {
        query = query.filter(patient::Column::Gender.eq(gender.as_str()));
    }
    if let Some(min) = filter.min_age {
        query = query.filter(patient::Column::Age.gte(min.years()));
    }
    if let Some(max) = filter.max_age {
        query = query.filter(patient::Column::Age.lte(max.years()));
    }
    let filtered_total = if filter.narrows() {
        Some(query.clone().count(db).await?)
    } else {
        None
    };
    let page_query = sorted(query, filter.sort, patient::Column::Id)
        .limit(page.limit())
        .offset(page.offset());
    if let Some(total) = filtered_total {
        let items = page_query.all(db).await?;
        return Ok(Listed { items, total });
    }
    // Unfiltered: the total is the trigger-kept count, read by the same
    // statement (one round trip, one snapshot) unless the page is empty.
    let rows = page_query
        .expr_as(unfiltered_total(principal), "total")
        .into_model::<WithTotal>()
        .all(db)
        .await?;
    let total = match rows.first() {
        Some(row) => row.total,
        None => count_all(db, principal).await?,
    };
    let items = rows.into_iter().map(|row| row.patient).collect();
    Ok(Listed {
        items,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// A patient row with the list's total alongside.
struct WithTotal {
    patient: patient::Model,
    total: i64,
}

impl FromQueryResult for WithTotal {
    fn from_query_result(row: &QueryResult, prefix: &str) -> Result<Self, DbErr> {
        Ok(Self {
            patient: patient::Model::from_query_result(row, prefix)?,
            total: row.try_get(prefix, "total")?,
        })
    }
}

/// How many live patients the caller sees, from `patient_counts`: the sum
/// of the owner's shards, or of every owner's for an administrator.
fn unfiltered_total(principal: &Principal) -> SimpleExpr {
    let mut total = Query::select();
    // SUM of BIGINT is NUMERIC on PostgreSQL: back to BIGINT.
    total.from(patient_count::Entity).expr(Func::cast_as(
        Func::coalesce([Expr::col(patient_count::Column::N).sum(), Expr::val(0_i64)]),
        Alias::new("BIGINT"),
    ));
    if let Some(owner) = principal.owner_filter() {
        total.and_where(Expr::col(patient_count::Column::OwnerId).eq(owner));
    }
    SimpleExpr::SubQuery(None, Box::new(total.into_sub_query_statement()))
}

async fn count_all(db: &DatabaseConnection, principal: &Principal) -> Result<i64, DbErr> {
    let statement = db.get_database_backend().build(
        &Query::select()
            .expr_as(unfiltered_total(principal), "total")
            .to_owned(),
    );
    let row = db.query_one_raw(statement).await?;
    Ok(match row {
        Some(row) => row.try_get("", "total")?,
        None => 0,
    })
}

/// A live patient the caller may see.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    id: i64,
) -> Result<Option<patient::Model>, DbErr> {
    visible(principal)
        .filter(patient::Column::Id.eq(id))
        .one(db)
        .await
}

/// A patient the caller owns (or any, for an administrator), deleted or
/// not: whose history the caller may read.
pub async fn get_any(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
) -> Result<Option<patient::Model>, DbErr> {
    owned(principal)
        .filter(patient::Column::Id.eq(id))
        .one(db)
        .await
}

/// A change of one of the caller's live patients: bumps its version and
/// `updated_at`, guarded by `if_version`. One statement, so two concurrent
/// writers with the same `If-Match` cannot both win.
fn change_statement(
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> sea_orm::UpdateMany<patient::Entity> {
    let mut update = bump(id).filter(patient::Column::DeletedAt.is_null());
    if let Some(owner) = principal.owner_filter() {
        update = update.filter(patient::Column::CreatedBy.eq(owner));
    }
    if let Some(version) = if_version {
        update = update.filter(patient::Column::Version.eq(version));
    }
    update
}

/// A new version of patient `id`.
fn bump(id: i64) -> sea_orm::UpdateMany<patient::Entity> {
    patient::Entity::update_many()
        .col_expr(patient::Column::UpdatedAt, Expr::value(super::now()))
        .col_expr(
            patient::Column::Version,
            Expr::col(patient::Column::Version).add(1),
        )
        .filter(patient::Column::Id.eq(id))
}

/// Applies `changes` when the patient is visible to the caller and, when
/// `if_version` is given, still at that version.
pub async fn update(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
    changes: PatientChanges,
    if_version: Option<i64>,
) -> Result<patient::Model, ChangeError> {
    let mut update = change_statement(principal, id, if_version);
    if let Some(name) = changes.name {
        update = update.col_expr(
            patient::Column::NameKey,
            Expr::value(fold_case(name.as_str())),
        );
        update = update.col_expr(patient::Column::Name, Expr::value(name.into_string()));
    }
    if let Some(age) = changes.age {
        update = update.col_expr(patient::Column::Age, Expr::value(age.years()));
    }
    if let Some(gender) = changes.gender {
        update = update.col_expr(patient::Column::Gender, Expr::value(gender.as_str()));
    }
    match write.apply(db, update, Change::Updated, version_of).await? {
        Some(row) => Ok(row),
        None => Err(missing_or_stale(db, principal, id).await),
    }
}

async fn missing_or_stale(db: &DatabaseConnection, principal: &Principal, id: i64) -> ChangeError {
    match get(db, principal, id).await {
        Ok(Some(_)) => ChangeError::Stale,
        Ok(None) => ChangeError::NotFound,
        Err(err) => ChangeError::Db(err),
    }
}

/// Deletes the patient: it is kept, hidden from every read, list, count and
/// mapping of its users, until an administrator restores or erases it.
pub async fn delete(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<(), ChangeError> {
    let delete = change_statement(principal, id, if_version)
        .col_expr(patient::Column::DeletedAt, Expr::value(super::now()));
    match write.apply(db, delete, Change::Deleted, version_of).await? {
        Some(_) => Ok(()),
        None => Err(missing_or_stale(db, principal, id).await),
    }
}

/// Who may restore or erase: administrators; anyone else is told 403 about
/// their own patient and 404 about anyone else's.
async fn require_admin(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
) -> Result<(), ChangeError> {
    if principal.is_staff {
        return Ok(());
    }
    match get_any(db, principal, id).await? {
        Some(_) => Err(ChangeError::Forbidden),
        None => Err(ChangeError::NotFound),
    }
}

/// Brings a deleted patient back as it was, with a new version; its
/// mappings come back with it.
pub async fn restore(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
) -> Result<patient::Model, ChangeError> {
    require_admin(db, principal, id).await?;
    let restore = bump(id)
        .col_expr(
            patient::Column::DeletedAt,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .filter(patient::Column::DeletedAt.is_not_null());
    match write
        .apply(db, restore, Change::Restored, version_of)
        .await?
    {
        Some(row) => Ok(row),
        None => match get_any(db, principal, id).await? {
            Some(_) => Err(ChangeError::NotDeleted),
            None => Err(ChangeError::NotFound),
        },
    }
}

/// Erases a patient for good (a data subject's right to erasure): the row,
/// its mappings and every version of both. Only the audit trail's metadata
/// (who did what, when, to which id) remains.
pub async fn erase(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    id: i64,
) -> Result<(), ChangeError> {
    require_admin(db, principal, id).await?;
    let txn = super::begin_write(db).await?;
    let mapping_ids: Vec<i64> = mapping::Entity::find()
        .select_only()
        .column(mapping::Column::Id)
        .filter(mapping::Column::PatientId.eq(id))
        .into_tuple()
        .all(&txn)
        .await?;
    let erased = patient::Entity::delete_many()
        .filter(patient::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    if erased.rows_affected != 1 {
        return Err(ChangeError::NotFound);
    }
    super::history::erase(&txn, Resource::Mapping, mapping_ids).await?;
    super::history::erase(&txn, Resource::Patient, vec![id]).await?;
    write
        .audit_only(&txn, Action::Erase, Resource::Patient, id)
        .await?;
    txn.commit().await?;
    Ok(())
}
