//! Accounts: usernames, email addresses and new passwords.
//!
//! Two identifiers that a person reads as the same must be the same account:
//! usernames are stored in Unicode NFKC form (as Django stores them, so
//! `ａｄｍｉｎ１` is `admin1`) and compared after full Unicode case folding;
//! email addresses are compared with the local part case-folded and the
//! domain in its IDNA ASCII form (`exämple.com` is `xn--exmple-cua.com`).
//! Usernames mixing scripts (`pаypal` with a Cyrillic `а`) are refused.

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

use super::Invalid;
use super::text::BLANK;

/// A username: letters, digits and `@.+-_`, 1 to 150 characters, in one
/// script (Latin, Cyrillic, Han with kana, ...; digits and `@.+-_` go
/// with any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MAX_CHARS: usize = 150;
    /// Characters allowed besides letters and digits (Django's rule).
    pub const PUNCTUATION: &'static str = "@.+-_";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name: String = raw.trim().nfkc().collect();
        if name.is_empty() {
            return Err(Invalid::new(BLANK));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "Ensure this field has no more than {} characters.",
                Self::MAX_CHARS
            )));
        }
        if !name
            .chars()
            .all(|c| c.is_alphanumeric() || Self::PUNCTUATION.contains(c))
        {
            return Err(Invalid::new(
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ));
        }
        if !name.as_str().is_single_script() {
            return Err(Invalid::new(
                "Enter a valid username. Letters from different scripts (for example Latin and Cyrillic) cannot be mixed.",
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What makes two usernames the same account.
    pub fn key(&self) -> String {
        username_key(&self.0)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The comparison key of a username as typed (at login: no validation, so
/// that a wrong name costs the same as a right one).
pub fn username_key(raw: &str) -> String {
    let nfkc: String = raw.trim().nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

/// An email address that looks deliverable: RFC 5322 syntax without display
/// name, and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let address = raw.trim();
        if address.is_empty() {
            return Err(Invalid::new(BLANK));
        }
        if address.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "Ensure this field has no more than {} characters.",
                Self::MAX_CHARS
            )));
        }
        let invalid = || Invalid::new("Enter a valid email address.");
        let parsed = email_address::EmailAddress::parse_with_options(
            address,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| invalid())?;
        let domain = parsed.domain();
        if !domain.contains('.') || domain.starts_with('[') {
            return Err(invalid());
        }
        let ascii_domain = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
        let local: String = parsed.local_part().nfkc().collect();
        let key = format!(
            "{}@{}",
            caseless::default_case_fold_str(&local),
            ascii_domain.to_ascii_lowercase()
        );
        Ok(Self {
            address: address.to_owned(),
            key,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// What makes two addresses the same mailbox.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A new password: 8 to 128 characters (never trimmed or truncated), and not
/// guessable by the zxcvbn estimator at the configured strength.
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// zxcvbn's score a new password must reach: 0 (anything) to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strength(u8);

impl Strength {
    pub const MAX: u8 = 4;
    /// "Safely unguessable: moderate protection from offline attacks."
    pub const DEFAULT: Strength = Strength(3);

    pub fn new(score: u8) -> Option<Self> {
        (score <= Self::MAX).then_some(Self(score))
    }

    pub fn score(self) -> u8 {
        self.0
    }
}

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// `context`: the username and email, which the password must not resemble.
    pub fn parse(raw: String, context: &[&str], required: Strength) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Invalid::new(format!(
                "This password is too short. It must contain at least {} characters.",
                Self::MIN_CHARS
            )));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "This password is too long. It must contain at most {} characters.",
                Self::MAX_CHARS
            )));
        }
        let estimate = zxcvbn::zxcvbn(&raw, context);
        let score = u8::from(estimate.score());
        if score >= required.0 {
            return Ok(Self(raw));
        }
        let mut message = format!(
            "This password is too easy to guess (strength {score} of 4; this server requires {}, \
             its PASSWORD_MIN_STRENGTH setting).",
            required.0
        );
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
        Err(Invalid::new(message))
    }

    pub fn expose(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullwidth_and_case_variants_are_one_username() {
        let fullwidth = Username::parse("ａｄｍｉｎ１").unwrap();
        assert_eq!(fullwidth.as_str(), "admin1");
        assert_eq!(fullwidth.key(), Username::parse("ADMIN1").unwrap().key());
        assert_eq!(username_key("Straße"), username_key("STRASSE"));
    }

    #[test]
    fn mixed_script_usernames_are_refused_single_script_ones_kept() {
        assert!(Username::parse("p\u{0430}ypal").is_err());
        assert!(Username::parse("иван_1").is_ok());
        assert!(Username::parse("山田たろう").is_ok());
        assert!(Username::parse("john.doe+1@x").is_ok());
    }

    #[test]
    fn an_idn_domain_and_its_punycode_are_one_mailbox() {
        let unicode = Email::parse("a@exämple.com").unwrap();
        let ascii = Email::parse("A@xn--exmple-cua.com").unwrap();
        assert_eq!(unicode.key(), ascii.key());
        assert_eq!(unicode.as_str(), "a@exämple.com");
        assert!(Email::parse("a@localhost").is_err());
        assert!(Email::parse("not an email").is_err());
    }

    #[test]
    fn the_seed_password_is_refused_at_the_default_strength_with_the_setting_named() {
        let err = NewPassword::parse(
            "password123".into(),
            &["john", "john@example.com"],
            Strength::DEFAULT,
        )
        .unwrap_err();
        assert!(err.message().contains("PASSWORD_MIN_STRENGTH"), "{err}");
        assert!(
            NewPassword::parse("testpass123".into(), &[], Strength::new(0).unwrap()).is_ok(),
            "strength 0 accepts any password of a valid length"
        );
    }

    #[test]
    fn password_length_bounds_are_enforced() {
        assert!(NewPassword::parse("Ab1!x".into(), &[], Strength::DEFAULT).is_err());
        assert!(NewPassword::parse("Zq9!".repeat(33), &[], Strength::DEFAULT).is_err());
        assert!(
            NewPassword::parse("Velvet-Otter-Quarry-42!".into(), &[], Strength::DEFAULT).is_ok()
        );
    }
}
