use sea_orm_migration::prelude::*;

use crate::m20261128_000001_create_users_table::Users;
use crate::{id_column, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Patients::Table)
                    .col(id_column(Patients::Id))
                    .col(ColumnDef::new(Patients::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Patients::NameKey).string_len(800).not_null())
                    .col(ColumnDef::new(Patients::Age).integer().not_null())
                    .col(ColumnDef::new(Patients::Gender).string_len(16).not_null())
                    .col(ColumnDef::new(Patients::CreatedBy).big_integer().not_null())
                    .col(timestamp(Patients::CreatedAt))
                    .col(timestamp(Patients::UpdatedAt))
                    .col(
                        ColumnDef::new(Patients::Version)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_patients_created_by")
                            .from(Patients::Table, Patients::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Every list is "the caller's patients, by id": one index serves it.
        manager
            .create_index(
                Index::create()
                    .name("ix_patients_created_by_id")
                    .table(Patients::Table)
                    .col(Patients::CreatedBy)
                    .col(Patients::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Patients::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Patients {
    Table,
    Id,
    Name,
    /// The name lower-cased by the server (Unicode-aware on every
    /// database), for case-insensitive search.
    NameKey,
    Age,
    Gender,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    Version,
}
