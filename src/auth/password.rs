//! Argon2id password hashing, off the async executor and bounded in
//! concurrency, plus the strength rules for new passwords.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zxcvbn::Score;

/// OWASP's minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

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

/// Why a new password is refused, as a sentence for the user.
pub fn check_strength(password: &str, context: &[&str]) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "This password is too short. It must contain at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "This password is too long. It must contain at most {MAX_PASSWORD_CHARS} characters."
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, context);
    if estimate.score() >= Score::Three {
        return Ok(());
    }
    let mut message = String::from("This password is too easy to guess.");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_password_is_refused_with_a_reason() {
        let err = check_strength("password123", &["john", "john@example.com"]).unwrap_err();
        assert!(
            err.starts_with("This password is too easy to guess."),
            "{err}"
        );
        assert!(
            err.len() > "This password is too easy to guess.".len(),
            "{err}"
        );
    }

    #[test]
    fn password_like_the_username_is_refused() {
        assert!(check_strength("johnsmith1985", &["johnsmith1985", "j@example.com"]).is_err());
    }

    #[test]
    fn long_random_passphrase_is_accepted() {
        assert!(check_strength("Velvet-Otter-Quarry-42!", &["john", "john@example.com"]).is_ok());
    }

    #[test]
    fn length_bounds_are_enforced() {
        assert!(
            check_strength("Ab1!x", &[])
                .unwrap_err()
                .contains("too short")
        );
        let long = "Zq9!".repeat(33);
        assert!(check_strength(&long, &[]).unwrap_err().contains("too long"));
    }

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let phc = hash_blocking("Velvet-Otter-Quarry-42!").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("Velvet-Otter-Quarry-42!", &phc));
        assert!(!verify_blocking("velvet-otter-quarry-42!", &phc));
    }
}
