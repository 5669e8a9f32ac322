//! Server-wide settings kept in the database.

use rand::RngCore;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};

use crate::entity::server_setting;

const JWT_SECRET_KEY: &str = "jwt_secret";

/// The JWT signing secret kept in the database, created on first use. Every
/// instance inserts-if-absent and then reads, so all agree on one value.
pub async fn jwt_secret(db: &DatabaseConnection) -> Result<String, DbErr> {
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    let candidate = server_setting::ActiveModel {
        key: Set(JWT_SECRET_KEY.to_string()),
        value: Set(hex::encode(bytes)),
    };
    server_setting::Entity::insert(candidate)
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    server_setting::Entity::find_by_id(JWT_SECRET_KEY.to_string())
        .one(db)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound("jwt_secret setting".into()))
}
