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
                    .table(Doctors::Table)
                    .col(id_column(Doctors::Id))
                    .col(ColumnDef::new(Doctors::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Doctors::NameKey).string_len(800).not_null())
                    .col(
                        ColumnDef::new(Doctors::Specialization)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Doctors::SpecializationKey)
                            .string_len(400)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Doctors::CreatedBy).big_integer().not_null())
                    .col(timestamp(Doctors::CreatedAt))
                    .col(timestamp(Doctors::UpdatedAt))
                    .col(
                        ColumnDef::new(Doctors::Version)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_doctors_created_by")
                            .from(Doctors::Table, Doctors::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_doctors_created_by")
                    .table(Doctors::Table)
                    .col(Doctors::CreatedBy)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Doctors::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Doctors {
    Table,
    Id,
    Name,
    /// Lower-cased name and specialization, for case-insensitive filters.
    NameKey,
    Specialization,
    SpecializationKey,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    Version,
}
