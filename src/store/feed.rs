//! The change feed: every committed version of a patient, doctor or
//! mapping, in the order it got its position.
//!
//! A position is given only once a version is committed, so a reader that
//! passed position `p` never meets a later version below `p` (a
//! transaction committing late gets a later position, never an earlier
//! one). On SQLite writers take turns, and the version's id (handed out in
//! commit order, never reused) is set as its position in its own
//! transaction (see `history::insert`). On PostgreSQL, [`sequence`] gives
//! committed versions their positions, one instance at a time.

use std::sync::OnceLock;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use tokio::sync::watch;

use crate::domain::audit::Resource;
use crate::entity::record_version;

/// The PostgreSQL channel on which every committed version is announced
/// (by a trigger), and the one on which new positions are.
pub const VERSIONS_CHANNEL: &str = "healthcare_versions";
pub const FEED_CHANNEL: &str = "healthcare_feed";

/// Serialises the sequencers of every instance on one PostgreSQL database.
const SEQUENCER_LOCK: i64 = 0x6865_616c_7466; // "healtf"

fn written() -> &'static watch::Sender<u64> {
    static WRITTEN: OnceLock<watch::Sender<u64>> = OnceLock::new();
    WRITTEN.get_or_init(|| watch::Sender::new(0))
}

/// Tells the readers of this process that a version is being written
/// (called inside the writing transaction: a reader that wakes settles
/// before reading, see [`page`]).
pub fn announce() {
    written().send_modify(|n| *n = n.wrapping_add(1));
}

/// Wakes when [`announce`] is called in this process.
pub fn announcements() -> watch::Receiver<u64> {
    written().subscribe()
}

/// Gives committed versions without a position the next positions, in id
/// order (for one record, its version order), and announces them on
/// [`FEED_CHANNEL`]. PostgreSQL only; one instance at a time (an advisory
/// lock), so positions only grow. Returns how many it positioned.
pub async fn sequence(db: &DatabaseConnection) -> Result<u64, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(0);
    }
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [SEQUENCER_LOCK.into()],
    ))
    .await?;
    // Each statement of READ COMMITTED sees what is committed when it
    // starts: after the lock, so it sees the positions the previous holder
    // gave. A version committing meanwhile waits for the next pass.
    let done = txn
        .execute_unprepared(
            "UPDATE record_versions r SET position = n.p
             FROM (SELECT id, nextval('record_versions_position_seq') AS p
                   FROM (SELECT id FROM record_versions WHERE position IS NULL
                         ORDER BY id LIMIT 1000) s) n
             WHERE r.id = n.id",
        )
        .await?
        .rows_affected();
    if done > 0 {
        txn.execute_unprepared(&format!("NOTIFY {FEED_CHANNEL}"))
            .await?;
    }
    txn.commit().await?;
    Ok(done)
}

/// Who reads the feed: whose records (`None`: everyone's, for
/// administrators) and which kinds of record (a service client's read
/// scopes). Doctors are a shared directory: every reader sees them.
#[derive(Debug, Clone)]
pub struct Reader {
    pub owner: Option<i64>,
    pub kinds: Vec<Resource>,
}

/// Up to `limit` positioned versions after `after`, oldest first, that
/// `reader` may see. With `settle` (after a wake-up on SQLite) the read
/// waits its turn behind the writer that announced, so that what it
/// announced is committed and seen.
pub async fn page(
    db: &DatabaseConnection,
    reader: &Reader,
    after: i64,
    limit: u64,
    settle: bool,
) -> Result<Vec<record_version::Model>, DbErr> {
    use sea_orm::sea_query::Condition;
    let kinds: Vec<&str> = reader.kinds.iter().map(|k| k.as_str()).collect();
    let mut visible = Condition::any().add(record_version::Column::Resource.eq("doctor"));
    visible = match reader.owner {
        Some(owner) => visible.add(record_version::Column::OwnerId.eq(owner)),
        None => Condition::all(),
    };
    let query = record_version::Entity::find()
        .filter(record_version::Column::Position.gt(after))
        .filter(record_version::Column::Resource.is_in(kinds))
        .filter(visible)
        .order_by_asc(record_version::Column::Position)
        .limit(limit);
    if db.get_database_backend() == DbBackend::Postgres {
        // Read your writes: a change answered before this request is in
        // the page even if the sequencer has not reached it yet.
        let waiting = record_version::Entity::find()
            .filter(record_version::Column::Position.is_null())
            .one(db)
            .await?;
        if waiting.is_some() {
            sequence(db).await?;
        }
    }
    if settle && db.get_database_backend() == DbBackend::Sqlite {
        let txn = super::begin_write(db).await?;
        let rows = query.all(&txn).await?;
        txn.commit().await?;
        Ok(rows)
    } else {
        query.all(db).await
    }
}
