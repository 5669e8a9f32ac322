//! A record's versions as the API shows them, for every kind of record.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use sea_orm::DatabaseConnection;

use super::link_header;
use crate::domain::Page;
use crate::domain::audit::Resource;
use crate::entity::record_version;
use crate::error::ApiError;
use crate::store::history;

/// One version of a record: the whole record after a change.
#[derive(Object, Debug, Clone)]
#[oai(rename = "Version")]
pub struct Version<R: Type + ParseFromJSON + ToJSON> {
    /// The version (the one in the record's `ETag` at the time).
    pub version: i64,
    /// `created`, `updated`, `deleted`, `restored`, or `imported` (the
    /// record existed before versions were kept).
    pub change: String,
    /// When the change was committed (UTC).
    pub at: DateTime<Utc>,
    /// The user who made the change (absent for imported versions).
    #[oai(skip_serializing_if_is_none)]
    pub actor: Option<i64>,
    /// The service client that made it for the user, if any.
    #[oai(skip_serializing_if_is_none)]
    pub client: Option<i64>,
    /// The `X-Request-Id` of the request that made it.
    pub request_id: String,
    /// The record as it was after the change.
    pub record: R,
}

impl<R: Type + ParseFromJSON + ToJSON> Version<R> {
    /// A stored version, its row shown as the API shows the record (`M`
    /// is the row's type).
    fn read<M>(version: record_version::Model) -> Result<Self, ApiError>
    where
        M: serde::de::DeserializeOwned,
        R: From<M>,
    {
        let row: M = history::row(&version)?;
        Ok(Self {
            version: version.version,
            change: version.change,
            at: version.at,
            actor: version.actor_id,
            client: version.client_id,
            request_id: version.request_id,
            record: row.into(),
        })
    }
}

/// One page of a record's versions, newest first: the versions, the total
/// and the `Link` header (`path` is the history's URL).
pub async fn page<R, M>(
    db: &DatabaseConnection,
    resource: Resource,
    id: i64,
    page: Page,
    path: &str,
) -> Result<(Vec<Version<R>>, u64, Option<String>), ApiError>
where
    R: Type + ParseFromJSON + ToJSON + From<M>,
    M: serde::de::DeserializeOwned,
{
    let listed = history::list(db, resource, id, page).await?;
    let link = link_header(path, &[], page, listed.total);
    let items = listed
        .items
        .into_iter()
        .map(Version::read::<M>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, listed.total, link))
}

/// One version of a record; 404 when there is no such version.
pub async fn one<R, M>(
    db: &DatabaseConnection,
    resource: Resource,
    id: i64,
    version: i64,
) -> Result<Version<R>, ApiError>
where
    R: Type + ParseFromJSON + ToJSON + From<M>,
    M: serde::de::DeserializeOwned,
{
    let found = history::get(db, resource, id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("Version"))?;
    Version::read::<M>(found)
}
