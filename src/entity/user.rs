use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: String,
    /// The username's comparison key (NFKC, case-folded); unique.
    #[sea_orm(unique)]
    pub username_key: String,
    pub email: String,
    /// The email's comparison key (case-folded, IDNA domain); unique.
    #[sea_orm(unique)]
    pub email_key: String,
    pub password_hash: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: DateTimeUtc,
    /// Access tokens issued before this are refused (set on deactivation).
    pub tokens_valid_after: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
