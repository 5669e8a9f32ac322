//! Accounts.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};

use crate::domain::fold_case;
use crate::entity::user;
use crate::error::is_unique_violation;

pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_staff: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Which of `username` / `email` is taken.
    #[error("{0:?} is taken")]
    Taken(Vec<&'static str>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Which unique fields of a would-be user are already taken.
pub async fn taken_fields(
    db: &DatabaseConnection,
    username: &str,
    email: &str,
) -> Result<Vec<&'static str>, DbErr> {
    let mut taken = Vec::new();
    if find_by_username(db, username).await?.is_some() {
        taken.push("username");
    }
    let by_email = user::Entity::find()
        .filter(user::Column::EmailKey.eq(fold_case(email)))
        .one(db)
        .await?;
    if by_email.is_some() {
        taken.push("email");
    }
    Ok(taken)
}

pub async fn create(db: &DatabaseConnection, new: NewUser) -> Result<user::Model, CreateUserError> {
    let row = user::ActiveModel {
        username_key: Set(fold_case(&new.username)),
        email_key: Set(fold_case(&new.email)),
        username: Set(new.username.clone()),
        email: Set(new.email.clone()),
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
            Err(CreateUserError::Taken(if taken.is_empty() {
                vec!["username"]
            } else {
                taken
            }))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn find_by_username(
    db: &DatabaseConnection,
    username: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::UsernameKey.eq(fold_case(username)))
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
        .col_expr(
            user::Column::PasswordHash,
            sea_orm::sea_query::Expr::value(password_hash),
        )
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Activates or deactivates a user; `None` when there is no such user.
pub async fn set_active(
    db: &DatabaseConnection,
    id: i64,
    active: bool,
) -> Result<Option<user::Model>, DbErr> {
    let mut rows = user::Entity::update_many()
        .col_expr(
            user::Column::IsActive,
            sea_orm::sea_query::Expr::value(active),
        )
        .filter(user::Column::Id.eq(id))
        .exec_with_returning(db)
        .await?;
    Ok(rows.pop())
}

pub async fn list(
    db: &DatabaseConnection,
    page: super::Page,
) -> Result<super::Listed<user::Model>, DbErr> {
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
    let total = user::Entity::find().count(db).await?;
    let items = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(db)
        .await?;
    Ok(super::Listed { items, total })
}
