//! The rule every free-text field follows (patient and doctor names,
//! specialisations): surrounding whitespace is trimmed; what is left is 1 to
//! `max` characters, starts and ends with a visible character, and holds no
//! control character and no bidirectional override.
//!
//! The character classes are plain predicates so that the OpenAPI pattern
//! published for these fields is derived from them (see `api::schema`)
//! instead of being written a second time.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::Invalid;

/// Trimmed from both ends (Unicode `White_Space`, as `str::trim`).
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Never allowed (Unicode `Cc`: NUL, tabs and newlines inside the text, ...).
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// Bidirectional embeddings, overrides and isolates: they make text display
/// in another order than it is stored (`a\u{202E}gnp.exe` shows as
/// `aexe.png`). Never allowed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Invisible formatting characters of the Basic Multilingual Plane (Unicode
/// `Cf`: zero-width space, joiners, byte-order mark, ...). Allowed inside
/// the text (joiners are part of many scripts and emoji), never at its ends,
/// so that a text is never blank to the eye.
pub fn is_format(c: char) -> bool {
    u32::from(c) <= 0xFFFF && c.general_category() == GeneralCategory::Format
}

/// May appear anywhere in the trimmed text.
pub fn is_allowed(c: char) -> bool {
    !is_control(c) && !is_bidi_control(c)
}

/// May start and end the trimmed text.
pub fn is_visible(c: char) -> bool {
    is_allowed(c) && !is_space(c) && !is_format(c)
}

pub const BLANK: &str = "This field may not be blank.";

/// Trims `raw` and checks it against the rule; returns the trimmed text.
pub fn check(raw: &str, max_chars: usize) -> Result<&str, Invalid> {
    let text = raw.trim_matches(is_space);
    let (Some(first), Some(last)) = (text.chars().next(), text.chars().next_back()) else {
        return Err(Invalid::new(BLANK));
    };
    if text.chars().count() > max_chars {
        return Err(Invalid::new(format!(
            "Ensure this field has no more than {max_chars} characters."
        )));
    }
    if text.chars().any(is_control) {
        return Err(Invalid::new("Control characters are not allowed."));
    }
    if text.chars().any(is_bidi_control) {
        return Err(Invalid::new(
            "Bidirectional override characters (U+202A-U+202E, U+2066-U+2069) are not allowed.",
        ));
    }
    if !text.chars().any(is_visible) {
        return Err(Invalid::new(BLANK));
    }
    if !is_visible(first) || !is_visible(last) {
        return Err(Invalid::new(
            "Must start and end with a visible character (no invisible formatting characters at either end).",
        ));
    }
    Ok(text)
}

/// Declares a text value type: trimmed, at most `$max` characters, checked
/// by [`check`]. `parse` is the only way to build one.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in characters, after trimming.
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, $crate::domain::Invalid> {
                $crate::domain::text::check(raw, Self::MAX_CHARS).map(|s| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use text_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrounding_whitespace_is_trimmed_and_length_counts_characters() {
        assert_eq!(check("  Zoë \t", 3).unwrap(), "Zoë");
        assert!(check("Zoëy", 3).is_err());
    }

    #[test]
    fn blank_and_invisible_only_texts_are_refused() {
        for raw in [
            "",
            "   ",
            "\u{200B}",
            "\u{FEFF}",
            "\u{200D}\u{200D}",
            " \u{2060} ",
        ] {
            assert_eq!(check(raw, 10).unwrap_err().message(), BLANK, "{raw:?}");
        }
    }

    #[test]
    fn bidi_overrides_and_controls_are_refused_anywhere() {
        assert!(check("a\u{202E}gnp.exe", 20).is_err());
        assert!(check("a\u{2066}b", 20).is_err());
        assert!(check("a\u{0}b", 20).is_err());
        assert!(check("a\nb", 20).is_err());
    }

    #[test]
    fn joiners_inside_a_name_are_kept_but_not_at_its_ends() {
        assert!(check("क्\u{200D}ष", 20).is_ok());
        assert!(check("\u{FEFF}Alice", 20).is_err());
        assert!(check("Alice\u{200B}", 20).is_err());
    }
}
