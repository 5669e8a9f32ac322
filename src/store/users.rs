//! Accounts. Usernames and emails are unique by their comparison keys (see
//! `domain::account`), enforced by unique indexes.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Listed, Page, is_unique_violation};
use crate::auth::{CreateAccountError, NewAccount, StatusError};
use crate::domain::account::username_key;
use crate::domain::{Email, Username};
use crate::entity::user;

/// Which unique fields of a would-be user are already taken.
pub async fn taken_fields(
    db: &DatabaseConnection,
    username: &Username,
    email: &Email,
) -> Result<Vec<&'static str>, DbErr> {
    let mut taken = Vec::new();
    let by_username = user::Entity::find()
        .filter(user::Column::UsernameKey.eq(username.key()))
        .one(db)
        .await?;
    if by_username.is_some() {
        taken.push("username");
    }
    let by_email = user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.key()))
        .one(db)
        .await?;
    if by_email.is_some() {
        taken.push("email");
    }
    Ok(taken)
}

pub async fn create(
    db: &DatabaseConnection,
    new: NewAccount,
) -> Result<user::Model, CreateAccountError> {
    let row = user::ActiveModel {
        username_key: Set(new.username.key()),
        email_key: Set(new.email.key().to_string()),
        username: Set(new.username.as_str().to_string()),
        email: Set(new.email.as_str().to_string()),
        password_hash: Set(new.password_hash),
        is_staff: Set(new.is_staff),
        is_active: Set(true),
        date_joined: Set(super::now()),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(model) => Ok(model),
        // Two registrations raced past the pre-check: the unique index decided.
        Err(err) if is_unique_violation(&err) => {
            let taken = taken_fields(db, &new.username, &new.email).await?;
            Err(CreateAccountError::Taken(if taken.is_empty() {
                vec!["username"]
            } else {
                taken
            }))
        }
        Err(err) => Err(err.into()),
    }
}

/// The account a username (as typed at login) names.
pub async fn find_by_username(
    db: &DatabaseConnection,
    username: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::UsernameKey.eq(username_key(username)))
        .one(db)
        .await
}

pub async fn find(db: &DatabaseConnection, id: i64) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).one(db).await
}

pub async fn set_password(
    db: &DatabaseConnection,
    id: i64,
    password_hash: String,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Activates or deactivates a user. Deactivation refuses every access token
/// issued until now. Refuses to deactivate the last active administrator: the
/// active administrators are locked while counting, so two administrators
/// deactivating each other cannot both succeed.
pub async fn set_active(
    db: &DatabaseConnection,
    id: i64,
    active: bool,
) -> Result<user::Model, StatusError> {
    let txn = super::begin_write(db).await?;
    if !active {
        let mut admins = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::IsStaff.eq(true))
            .filter(user::Column::IsActive.eq(true))
            // Every transaction locks them in the same order: no deadlock.
            .order_by_asc(user::Column::Id);
        if db.get_database_backend() == DbBackend::Postgres {
            admins = admins.lock_exclusive();
        }
        let admins: Vec<i64> = admins.into_tuple().all(&txn).await?;
        if admins == [id] {
            return Err(StatusError::LastAdmin);
        }
    }
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(active))
        .filter(user::Column::Id.eq(id));
    if !active {
        update = update.col_expr(user::Column::TokensValidAfter, Expr::value(super::now()));
    }
    let row = update
        .exec_with_returning(&txn)
        .await?
        .pop()
        .ok_or(StatusError::NotFound)?;
    txn.commit().await?;
    Ok(row)
}

pub async fn list(db: &DatabaseConnection, page: Page) -> Result<Listed<user::Model>, DbErr> {
    let total = user::Entity::find().count(db).await?;
    let items = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .limit(page.limit())
        .offset(page.offset())
        .all(db)
        .await?;
    Ok(Listed { items, total })
}
