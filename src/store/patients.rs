//! Patients belong to the user who created them. Every query here is scoped
//! to the caller (administrators see all), so that another user's patient is
//! indistinguishable from one that does not exist.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, QueryStatementBuilder, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryResult, QuerySelect, Select,
};

use super::{Listed, Page, Sort, contains_ci, owner_filter, sorted};
use crate::auth::Principal;
use crate::domain::{Gender, PatientChanges, PatientFields, fold_case};
use crate::entity::{patient, patient_count};

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("not found")]
    NotFound,
    #[error("version mismatch")]
    Stale,
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn visible(principal: &Principal) -> Select<patient::Entity> {
    let query = patient::Entity::find();
    match owner_filter(principal) {
        Some(owner) => query.filter(patient::Column::CreatedBy.eq(owner)),
        None => query,
    }
}

pub async fn create(
    db: &DatabaseConnection,
    owner: i64,
    fields: PatientFields,
) -> Result<patient::Model, DbErr> {
    let now = super::now();
    patient::ActiveModel {
        name_key: Set(fold_case(&fields.name)),
        name: Set(fields.name),
        age: Set(fields.age),
        gender: Set(fields.gender.as_str().to_string()),
        created_by: Set(owner),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Filters of the patient list; `None` means "any".
#[derive(Debug, Clone)]
pub struct PatientFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub gender: Option<Gender>,
    pub min_age: Option<i32>,
    pub max_age: Option<i32>,
    pub sort: Sort<patient::Column>,
}

impl Default for PatientFilter {
    fn default() -> Self {
        Self {
            search: None,
            gender: None,
            min_age: None,
            max_age: None,
            sort: Sort {
                column: patient::Column::Id,
                descending: false,
            },
        }
    }
}

pub async fn list(
    db: &DatabaseConnection,
    principal: &Principal,
    filter: &PatientFilter,
    page: Page,
) -> Result<Listed<patient::Model>, DbErr> {
    let mut query = visible(principal);
    if let Some(term) = &filter.search {
        query = query.filter(contains_ci(
            patient::Column::NameKey,
            term,
            owner_filter(principal).is_none(),
        ));
    }
    if let Some(gender) = filter.gender {
        query = query.filter(patient::Column::Gender.eq(gender.as_str()));
    }
    if let Some(min) = filter.min_age {
        query = query.filter(patient::Column::Age.gte(min));
    }
    if let Some(max) = filter.max_age {
        query = query.filter(patient::Column::Age.lte(max));
    }
    let filtered = filter.search.is_some()
        || filter.gender.is_some()
        || filter.min_age.is_some()
        || filter.max_age.is_some();
    let filtered_total = if filtered {
        Some(query.clone().count(db).await?)
    } else {
        None
    };
    let page_query = sorted(query, filter.sort, patient::Column::Id)
        .limit(page.limit)
        .offset(page.offset);
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

/// How many patients the caller sees, from `patient_counts`: the sum of the
/// owner's shards, or of every owner's for an administrator.
fn unfiltered_total(principal: &Principal) -> SimpleExpr {
    let mut total = Query::select();
    // SUM of BIGINT is NUMERIC on PostgreSQL: back to BIGINT.
    total.from(patient_count::Entity).expr(Func::cast_as(
        Func::coalesce([Expr::col(patient_count::Column::N).sum(), Expr::val(0_i64)]),
        Alias::new("BIGINT"),
    ));
    if let Some(owner) = owner_filter(principal) {
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

pub async fn get(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
) -> Result<Option<patient::Model>, DbErr> {
    visible(principal)
        .filter(patient::Column::Id.eq(id))
        .one(db)
        .await
}

/// Applies `changes` when the patient is visible to the caller and, when
/// `if_version` is given, still at that version. One statement, so two
/// concurrent writers with the same `If-Match` cannot both win.
pub async fn update(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    changes: PatientChanges,
    if_version: Option<i64>,
) -> Result<patient::Model, ChangeError> {
    let mut update = patient::Entity::update_many()
        .col_expr(patient::Column::UpdatedAt, Expr::value(super::now()))
        .col_expr(
            patient::Column::Version,
            Expr::col(patient::Column::Version).add(1),
        )
        .filter(patient::Column::Id.eq(id));
    if let Some(owner) = owner_filter(principal) {
        update = update.filter(patient::Column::CreatedBy.eq(owner));
    }
    if let Some(version) = if_version {
        update = update.filter(patient::Column::Version.eq(version));
    }
    if let Some(name) = changes.name {
        update = update.col_expr(patient::Column::NameKey, Expr::value(fold_case(&name)));
        update = update.col_expr(patient::Column::Name, Expr::value(name));
    }
    if let Some(age) = changes.age {
        update = update.col_expr(patient::Column::Age, Expr::value(age));
    }
    if let Some(gender) = changes.gender {
        update = update.col_expr(patient::Column::Gender, Expr::value(gender.as_str()));
    }
    let mut rows = update.exec_with_returning(db).await?;
    match rows.pop() {
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

/// Deletes the patient (its mappings go with it, by foreign-key cascade).
pub async fn delete(
    db: &DatabaseConnection,
    principal: &Principal,
    id: i64,
    if_version: Option<i64>,
) -> Result<(), ChangeError> {
    let mut delete = patient::Entity::delete_many().filter(patient::Column::Id.eq(id));
    if let Some(owner) = owner_filter(principal) {
        delete = delete.filter(patient::Column::CreatedBy.eq(owner));
    }
    if let Some(version) = if_version {
        delete = delete.filter(patient::Column::Version.eq(version));
    }
    if delete.exec(db).await?.rows_affected == 1 {
        Ok(())
    } else {
        Err(missing_or_stale(db, principal, id).await)
    }
}
