use sea_orm_migration::prelude::*;

use crate::m20261128_000002_create_patients_table::Patients;
use crate::m20261128_000003_create_doctors_table::Doctors;
use crate::{id_column, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Mappings::Table)
                    .col(id_column(Mappings::Id))
                    .col(ColumnDef::new(Mappings::PatientId).big_integer().not_null())
                    .col(ColumnDef::new(Mappings::DoctorId).big_integer().not_null())
                    .col(timestamp(Mappings::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mappings_patient")
                            .from(Mappings::Table, Mappings::PatientId)
                            .to(Patients::Table, Patients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mappings_doctor")
                            .from(Mappings::Table, Mappings::DoctorId)
                            .to(Doctors::Table, Doctors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One row per (patient, doctor): concurrent duplicates end in one row.
        manager
            .create_index(
                Index::create()
                    .name("ux_mappings_patient_doctor")
                    .table(Mappings::Table)
                    .col(Mappings::PatientId)
                    .col(Mappings::DoctorId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_mappings_doctor")
                    .table(Mappings::Table)
                    .col(Mappings::DoctorId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Mappings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Mappings {
    Table,
    Id,
    PatientId,
    DoctorId,
    CreatedAt,
}
