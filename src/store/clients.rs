//! Service clients. A user sees and manages their own; administrators see
//! everyone's. Rows are kept when a client is disabled or deleted (tokens
//! and audit events name them); `tokens_valid_after` is what refuses the
//! tokens issued before a rotation, a disabling or a deletion.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::{Listed, Page};
use crate::domain::{ClientName, Principal, Scopes};
use crate::entity::service_client;

pub async fn create(
    db: &DatabaseConnection,
    owner_id: i64,
    name: &ClientName,
    scopes: Scopes,
    secret_hash: String,
) -> Result<service_client::Model, DbErr> {
    service_client::ActiveModel {
        owner_id: Set(owner_id),
        name: Set(name.as_str().to_string()),
        scopes: Set(scopes.to_string_list()),
        secret_hash: Set(secret_hash),
        created_at: Set(super::now()),
        tokens_valid_after: Set(None),
        disabled_at: Set(None),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// A client, deleted or not (for checking its tokens).
pub async fn find(
    db: &DatabaseConnection,
    id: i64,
) -> Result<Option<service_client::Model>, DbErr> {
    service_client::Entity::find_by_id(id).one(db).await
}

/// A client `by` may see: not deleted, theirs (or anyone's for an
/// administrator).
pub async fn visible(
    db: &DatabaseConnection,
    by: &Principal,
    id: i64,
) -> Result<Option<service_client::Model>, DbErr> {
    let mut query =
        service_client::Entity::find_by_id(id).filter(service_client::Column::DeletedAt.is_null());
    if let Some(owner) = by.owner_filter() {
        query = query.filter(service_client::Column::OwnerId.eq(owner));
    }
    query.one(db).await
}

/// The clients `by` may see, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    by: &Principal,
    page: Page,
) -> Result<Listed<service_client::Model>, DbErr> {
    let mut query =
        service_client::Entity::find().filter(service_client::Column::DeletedAt.is_null());
    if let Some(owner) = by.owner_filter() {
        query = query.filter(service_client::Column::OwnerId.eq(owner));
    }
    super::counted_page(db, query, page, |q| {
        q.order_by_asc(service_client::Column::Id)
    })
    .await
}

/// Applies `change` to a live client and refuses every token issued to it
/// until now; the row as it is afterwards.
async fn revoking(
    db: &DatabaseConnection,
    id: i64,
    change: impl FnOnce(
        sea_orm::UpdateMany<service_client::Entity>,
    ) -> sea_orm::UpdateMany<service_client::Entity>,
) -> Result<Option<service_client::Model>, DbErr> {
    let update = service_client::Entity::update_many()
        .col_expr(
            service_client::Column::TokensValidAfter,
            Expr::value(super::now()),
        )
        .filter(service_client::Column::Id.eq(id))
        .filter(service_client::Column::DeletedAt.is_null());
    Ok(change(update).exec_with_returning(db).await?.pop())
}

/// A new secret: the old one stops working, and so does every token issued
/// with it.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    id: i64,
    secret_hash: String,
) -> Result<Option<service_client::Model>, DbErr> {
    revoking(db, id, |u| {
        u.col_expr(service_client::Column::SecretHash, Expr::value(secret_hash))
    })
    .await
}

/// Disables a client for good; disabling a disabled one keeps its date.
pub async fn disable(
    db: &DatabaseConnection,
    id: i64,
) -> Result<Option<service_client::Model>, DbErr> {
    let now = super::now();
    revoking(db, id, |u| {
        u.col_expr(
            service_client::Column::DisabledAt,
            Expr::col(service_client::Column::DisabledAt).if_null(now),
        )
    })
    .await
}

pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let now = super::now();
    Ok(revoking(db, id, |u| {
        u.col_expr(service_client::Column::DeletedAt, Expr::value(now))
    })
    .await?
    .is_some())
}
