//! Argon2id password hashing, off the async executor and bounded in
//! concurrency. (What makes a new password acceptable is
//! `domain::NewPassword`.)

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// OWASP's minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("password hashing pool closed")]
    Closed,
}

/// Hashes and verifies passwords on the blocking thread pool, at most
/// `concurrency` at a time, so that a burst of logins cannot take every core
/// (or every byte of memory: each hash needs 19 MiB).
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user is unknown
    /// so that a failed login costs the same either way.
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let random: String = uuid::Uuid::new_v4().to_string();
        let dummy_hash = hash_blocking(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// Verifies against `phc`, or against the dummy hash when there is no
    /// user, which always fails but takes the same time.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &phc)).await?;
        Ok(known && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let phc = hash_blocking("Velvet-Otter-Quarry-42!").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("Velvet-Otter-Quarry-42!", &phc));
        assert!(!verify_blocking("velvet-otter-quarry-42!", &phc));
    }
}
