//! Where the authentication limits live: in this process (one instance, the
//! SQLite default), or in the database, shared by every instance.

use std::time::Duration;

use crate::auth::limits::{LimitError, LimitStore, MemoryLimits};

/// The limit store a server runs with.
#[derive(Clone)]
pub enum LimitBackend {
    Memory(MemoryLimits),
}

impl LimitStore for LimitBackend {
    async fn gcra(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
        consume: bool,
    ) -> Result<Result<(), Duration>, LimitError> {
        match self {
            Self::Memory(store) => store.gcra(key, emission, burst, consume).await,
        }
    }

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), LimitError> {
        match self {
            Self::Memory(store) => store.remember(key, ttl).await,
        }
    }

    async fn remembered(&self, key: &str) -> Result<bool, LimitError> {
        match self {
            Self::Memory(store) => store.remembered(key).await,
        }
    }
}
