use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: String,
    /// Lower-cased username; its unique index makes usernames unique case-insensitively.
    #[sea_orm(unique)]
    pub username_key: String,
    pub email: String,
    /// Lower-cased email, unique like `username_key`.
    #[sea_orm(unique)]
    pub email_key: String,
    pub password_hash: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
