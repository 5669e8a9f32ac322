use sea_orm_migration::prelude::*;

use crate::{id_column, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign keys: the trail outlives what it describes.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(id_column(AuditEvents::Id))
                    .col(timestamp(AuditEvents::At))
                    .col(ColumnDef::new(AuditEvents::ActorId).big_integer().null())
                    .col(
                        ColumnDef::new(AuditEvents::Action)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::ResourceType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::ResourceId).big_integer().null())
                    .col(ColumnDef::new(AuditEvents::Status).integer().not_null())
                    .col(ColumnDef::new(AuditEvents::Ip).string_len(45).null())
                    .col(
                        ColumnDef::new(AuditEvents::RequestId)
                            .string_len(64)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "ix_audit_events_actor",
                vec![AuditEvents::ActorId, AuditEvents::Id],
            ),
            (
                "ix_audit_events_resource",
                vec![
                    AuditEvents::ResourceType,
                    AuditEvents::ResourceId,
                    AuditEvents::Id,
                ],
            ),
            ("ix_audit_events_at", vec![AuditEvents::At]),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditEvents::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum AuditEvents {
    Table,
    Id,
    At,
    ActorId,
    Action,
    ResourceType,
    ResourceId,
    Status,
    Ip,
    RequestId,
}
