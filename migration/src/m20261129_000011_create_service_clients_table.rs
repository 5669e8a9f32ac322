//! Service clients (OAuth 2.0 confidential clients): credentials a user
//! creates for an integration that acts for them with narrowed scopes.
//! Only a SHA-256 of each secret is kept (the secret is 256 random bits, so
//! a fast hash is enough). Rows are never removed while tokens may name
//! them: deletion and disabling are timestamps.

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
                    .table(ServiceClients::Table)
                    .col(id_column(ServiceClients::Id))
                    .col(
                        ColumnDef::new(ServiceClients::OwnerId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ServiceClients::Name)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ServiceClients::Scopes)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ServiceClients::SecretHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(timestamp(ServiceClients::CreatedAt))
                    .col(
                        ColumnDef::new(ServiceClients::TokensValidAfter)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ServiceClients::DisabledAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ServiceClients::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_service_clients_owner")
                            .from(ServiceClients::Table, ServiceClients::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_service_clients_owner")
                    .table(ServiceClients::Table)
                    .col(ServiceClients::OwnerId)
                    .col(ServiceClients::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServiceClients::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum ServiceClients {
    Table,
    Id,
    OwnerId,
    Name,
    Scopes,
    SecretHash,
    CreatedAt,
    TokensValidAfter,
    DisabledAt,
    DeletedAt,
}
