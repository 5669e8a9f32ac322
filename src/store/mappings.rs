//! Which doctors are assigned to which patients. A mapping is visible to the
//! owner of its patient (and to administrators) while it, its patient and
//! its doctor are all live: deleting a patient or doctor hides its mappings,
//! restoring it brings them back.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, JoinType, PaginatorTrait, QueryFilter, QuerySelect, QueryTrait, RelationTrait,
    Select,
};

use super::history::NewVersion;
use super::{
    Listed, Page, Sort, Write, doctors, is_foreign_key_violation, is_unique_violation, patients,
    sorted,
};
use crate::domain::Principal;
use crate::domain::audit::{Change, Resource};
use crate::entity::{doctor, mapping, patient};

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("patient not found")]
    NoSuchPatient,
    #[error("doctor not found")]
    NoSuchDoctor,
    #[error("already assigned")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub type WithDoctor = (mapping::Model, doctor::Model);

/// A mapping as its versions keep it: with the doctor it pointed to then.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub mapping: mapping::Model,
    pub doctor_detail: doctor::Model,
}

/// Live mappings of live patients the caller sees (the doctor's liveness
/// is checked where the doctor is joined).
fn visible(principal: &Principal) -> Select<mapping::Entity> {
    let query = mapping::Entity::find()
        .join(JoinType::InnerJoin, mapping::Relation::Patient.def())
        .filter(mapping::Column::DeletedAt.is_null())
        .filter(patient::Column::DeletedAt.is_null());
    match principal.owner_filter() {
        Some(owner) => query.filter(patient::Column::CreatedBy.eq(owner)),
        None => query,
    }
}

async fn count(query: Select<mapping::Entity>, db: &DatabaseConnection) -> Result<u64, DbErr> {
    query
        .join(JoinType::InnerJoin, mapping::Relation::Doctor.def())
        .filter(doctor::Column::DeletedAt.is_null())
        .count(db)
        .await
}

async fn with_doctors(
    query: Select<mapping::Entity>,
    db: &DatabaseConnection,
    sort: Sort<mapping::Column>,
    page: Page,
) -> Result<Vec<WithDoctor>, DbErr> {
    let rows = sorted(query, sort, mapping::Column::Id)
        .find_also_related(doctor::Entity)
        .filter(doctor::Column::DeletedAt.is_null())
        .limit(page.limit())
        .offset(page.offset())
        .all(db)
        .await?;
    // The filter on the joined doctor keeps only rows that found one.
    Ok(rows
        .into_iter()
        .filter_map(|(m, d)| d.map(|d| (m, d)))
        .collect())
}

fn version_of<'a>(snapshot: &'a Snapshot, owner: i64) -> NewVersion<'a, Snapshot> {
    NewVersion {
        resource: Resource::Mapping,
        id: snapshot.mapping.id,
        version: snapshot.mapping.version,
        owner: Some(owner),
        row: snapshot,
    }
}

pub async fn create(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    patient_id: i64,
    doctor_id: i64,
) -> Result<WithDoctor, CreateError> {
    let txn = super::begin_write(db).await?;
    let Some(patient) = patients::get(&txn, principal, patient_id).await? else {
        return Err(CreateError::NoSuchPatient);
    };
    let doctor = doctors::get(&txn, doctor_id)
        .await?
        .ok_or(CreateError::NoSuchDoctor)?;
    let row = mapping::ActiveModel {
        patient_id: Set(patient_id),
        doctor_id: Set(doctor_id),
        created_at: Set(super::now()),
        version: Set(1),
        deleted_at: Set(None),
        ..Default::default()
    };
    let mapping = match row.insert(&txn).await {
        Ok(mapping) => mapping,
        // The unique index on live (patient, doctor) pairs decides between
        // concurrent requests.
        Err(err) if is_unique_violation(&err) => return Err(CreateError::Duplicate),
        // The patient or doctor was erased after the checks above.
        Err(err) if is_foreign_key_violation(&err) => return Err(CreateError::NoSuchPatient),
        Err(err) => return Err(err.into()),
    };
    let snapshot = Snapshot {
        mapping,
        doctor_detail: doctor,
    };
    write
        .record(
            &txn,
            Change::Created,
            version_of(&snapshot, patient.created_by),
        )
        .await?;
    txn.commit().await?;
    Ok((snapshot.mapping, snapshot.doctor_detail))
}

/// Filters of the mapping list; `None` means "any".
#[derive(Debug, Clone)]
pub struct MappingFilter {
    pub patient: Option<i64>,
    pub doctor: Option<i64>,
    pub sort: Sort<mapping::Column>,
    /// The ordering as the client wrote it, `None` for the default.
    pub ordering: Option<&'static str>,
}

impl Default for MappingFilter {
    fn default() -> Self {
        Self {
            patient: None,
            doctor: None,
            sort: Sort {
                column: mapping::Column::Id,
                descending: false,
            },
            ordering: None,
        }
    }
}

impl MappingFilter {
    /// The filter as query parameters, for the `Link` of its pages.
    pub fn query_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(p) = self.patient {
            params.push(("patient", p.to_string()));
        }
        if let Some(d) = self.doctor {
            params.push(("doctor", d.to_string()));
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
    filter: &MappingFilter,
    page: Page,
) -> Result<Listed<WithDoctor>, DbErr> {
    let mut query = visible(principal);
    if let Some(patient) = filter.patient {
        query = query.filter(mapping::Column::PatientId.eq(patient));
    }
    if let Some(doctor) = filter.doctor {
        query = query.filter(mapping::Column::DoctorId.eq(doctor));
    }
    let total = count(query.clone(), db).await?;
    let items = with_doctors(query, db, filter.sort, page).await?;
    Ok(Listed { items, total })
}

/// The mappings of one patient, or `None` when the caller cannot see it.
pub async fn list_for_patient(
    db: &DatabaseConnection,
    principal: &Principal,
    patient_id: i64,
    page: Page,
) -> Result<Option<Listed<WithDoctor>>, DbErr> {
    if patients::get(db, principal, patient_id).await?.is_none() {
        return Ok(None);
    }
    let query = visible(principal).filter(mapping::Column::PatientId.eq(patient_id));
    let total = count(query.clone(), db).await?;
    let items = with_doctors(query, db, MappingFilter::default().sort, page).await?;
    Ok(Some(Listed { items, total }))
}

/// Deletes a live mapping of one of the caller's patients (it is kept,
/// hidden); false when there is none.
pub async fn delete(
    db: &DatabaseConnection,
    write: Write<'_>,
    principal: &Principal,
    mapping_id: i64,
) -> Result<bool, DbErr> {
    let txn = super::begin_write(db).await?;
    let found = visible(principal)
        .filter(mapping::Column::Id.eq(mapping_id))
        .find_also_related(doctor::Entity)
        .filter(doctor::Column::DeletedAt.is_null())
        .one(&txn)
        .await?;
    let Some((found, Some(doctor))) = found else {
        return Ok(false);
    };
    // An owner's statements name the owner (docs/scaling.md): the visible
    // row is theirs, and the update is limited to their patients' mappings.
    let owner = match principal.owner_filter() {
        Some(owner) => owner,
        None => patient_owner(&txn, found.patient_id).await?,
    };
    let mut update = mapping::Entity::update_many()
        .col_expr(mapping::Column::DeletedAt, Expr::value(super::now()))
        .col_expr(
            mapping::Column::Version,
            Expr::col(mapping::Column::Version).add(1),
        )
        .filter(mapping::Column::Id.eq(mapping_id))
        .filter(mapping::Column::DeletedAt.is_null());
    if let Some(owner) = principal.owner_filter() {
        update = update.filter(
            mapping::Column::PatientId.in_subquery(
                patient::Entity::find()
                    .select_only()
                    .column(patient::Column::Id)
                    .filter(patient::Column::CreatedBy.eq(owner))
                    .into_query(),
            ),
        );
    }
    let deleted = update.exec_with_returning(&txn).await?.pop();
    let Some(mapping) = deleted else {
        return Ok(false);
    };
    let snapshot = Snapshot {
        mapping,
        doctor_detail: doctor,
    };
    write
        .record(&txn, Change::Deleted, version_of(&snapshot, owner))
        .await?;
    txn.commit().await?;
    Ok(true)
}

async fn patient_owner<C: ConnectionTrait>(conn: &C, patient_id: i64) -> Result<i64, DbErr> {
    patient::Entity::find_by_id(patient_id)
        .one(conn)
        .await?
        .map(|p| p.created_by)
        .ok_or_else(|| DbErr::RecordNotFound(format!("patient {patient_id} of a mapping")))
}
