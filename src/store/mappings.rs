//! Which doctors are assigned to which patients. A mapping is visible to the
//! owner of its patient (and to administrators).

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    JoinType, PaginatorTrait, QueryFilter, QuerySelect, RelationTrait, Select,
};

use super::{Listed, Page, Sort, owner_filter, patients, sorted};
use crate::auth::Principal;
use crate::entity::{doctor, mapping, patient};
use crate::error::{is_foreign_key_violation, is_unique_violation};

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

fn visible(principal: &Principal) -> Select<mapping::Entity> {
    let query = mapping::Entity::find();
    match owner_filter(principal) {
        Some(owner) => query
            .join(JoinType::InnerJoin, mapping::Relation::Patient.def())
            .filter(patient::Column::CreatedBy.eq(owner)),
        None => query,
    }
}

async fn with_doctors(
    query: Select<mapping::Entity>,
    db: &DatabaseConnection,
    sort: Sort<mapping::Column>,
    page: Page,
) -> Result<Vec<WithDoctor>, DbErr> {
    let rows = sorted(query, sort, mapping::Column::Id)
        .find_also_related(doctor::Entity)
        .limit(page.limit)
        .offset(page.offset)
        .all(db)
        .await?;
    // The inner join on a NOT NULL foreign key always finds the doctor.
    Ok(rows
        .into_iter()
        .filter_map(|(m, d)| d.map(|d| (m, d)))
        .collect())
}

pub async fn create(
    db: &DatabaseConnection,
    principal: &Principal,
    patient_id: i64,
    doctor_id: i64,
) -> Result<WithDoctor, CreateError> {
    if patients::get(db, principal, patient_id).await?.is_none() {
        return Err(CreateError::NoSuchPatient);
    }
    let doctor = doctor::Entity::find_by_id(doctor_id)
        .one(db)
        .await?
        .ok_or(CreateError::NoSuchDoctor)?;
    let row = mapping::ActiveModel {
        patient_id: Set(patient_id),
        doctor_id: Set(doctor_id),
        created_at: Set(super::now()),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(model) => Ok((model, doctor)),
        // The unique index on (patient, doctor) decides between concurrent requests.
        Err(err) if is_unique_violation(&err) => Err(CreateError::Duplicate),
        // The patient or doctor was deleted after the checks above.
        Err(err) if is_foreign_key_violation(&err) => {
            if patients::get(db, principal, patient_id).await?.is_none() {
                Err(CreateError::NoSuchPatient)
            } else {
                Err(CreateError::NoSuchDoctor)
            }
        }
        Err(err) => Err(err.into()),
    }
}

/// Filters of the mapping list; `None` means "any".
#[derive(Debug, Clone)]
pub struct MappingFilter {
    pub patient: Option<i64>,
    pub doctor: Option<i64>,
    pub sort: Sort<mapping::Column>,
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
        }
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
    let total = query.clone().count(db).await?;
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
    let query = mapping::Entity::find().filter(mapping::Column::PatientId.eq(patient_id));
    let total = query.clone().count(db).await?;
    let items = with_doctors(query, db, MappingFilter::default().sort, page).await?;
    Ok(Some(Listed { items, total }))
}

/// Deletes a mapping of one of the caller's patients; false when there is none.
pub async fn delete(
    db: &DatabaseConnection,
    principal: &Principal,
    mapping_id: i64,
) -> Result<bool, DbErr> {
    let Some(found) = visible(principal)
        .filter(mapping::Column::Id.eq(mapping_id))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let result = mapping::Entity::delete_by_id(found.id).exec(db).await?;
    Ok(result.rows_affected == 1)
}
