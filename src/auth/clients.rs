//! Service-client secrets: 256 random bits, shown once, kept only as a
//! SHA-256. A fast hash is enough for a secret that cannot be guessed (a
//! password hash exists to slow the guessing of guessable ones); the
//! comparison is constant-time so that how long it takes says nothing about
//! how much of a guess was right.

use rand::RngCore;
use sha2::Digest;
use subtle::ConstantTimeEq;

/// Where a secret starts, so that secret scanners (and people) can tell one
/// apart from a token or a password.
pub const SECRET_PREFIX: &str = "hcs_";

/// A new secret: (the secret, the hash to store).
pub fn new_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{SECRET_PREFIX}{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    );
    let hash = secret_hash(&secret);
    (secret, hash)
}

/// The stored form of a secret: SHA-256, hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret whose hash is `stored`, in time that
/// does not depend on where they differ.
pub fn secret_matches(presented: &str, stored: &str) -> bool {
    let presented = secret_hash(presented);
    presented.as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_has_256_random_bits_and_only_its_hash_matches() {
        let (secret, hash) = new_secret();
        let (other, _) = new_secret();
        assert_ne!(secret, other);
        assert_eq!(
            secret.len(),
            SECRET_PREFIX.len() + 43,
            "32 bytes in base64url"
        );
        assert!(secret_matches(&secret, &hash));
        assert!(!secret_matches(&other, &hash));
        assert!(!secret_matches(&hash, &hash), "the hash is not the secret");
    }
}
