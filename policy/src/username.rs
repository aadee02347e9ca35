//! User names that are safe to use as file names in the state directory.

use std::fmt;

/// The longest user name accepted, in bytes.
pub const MAX_LEN: usize = 256;

/// A validated user name: 1 to 256 bytes of ASCII letters, digits and `_ . - @ $`, not starting
/// with `-` or `.`. Such a name can never escape the state directory, hide a file, or be taken
/// for an option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a user name was refused. The offending name is shown escaped, so a NUL or a control
/// character is visible rather than printed raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty string.
    #[error("empty user name")]
    Empty,
    /// Over [`MAX_LEN`] bytes.
    #[error("user name of {0} bytes is too long (at most {MAX_LEN})")]
    TooLong(usize),
    /// Starts with `-` or `.`.
    #[error("user name {0:?} must not start with {1:?}")]
    BadStart(String, char),
    /// Contains a character outside the allowed set.
    #[error(
        "user name {0:?} contains {1:?}, which is not allowed (letters, digits and _ . - @ $ only)"
    )]
    BadChar(String, char),
}

impl UserName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<UserName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(NameError::TooLong(name.len()));
        }
        // Shown names are cut so that a hostile 10 kB name does not flood a log line.
        let shown = || name.chars().take(64).collect::<String>();
        if let Some(c @ ('-' | '.')) = name.chars().next() {
            return Err(NameError::BadStart(shown(), c));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '$')))
        {
            return Err(NameError::BadChar(shown(), c));
        }
        Ok(UserName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for ok in [
            "alice",
            "john.doe",
            "svc-backup",
            "_apt",
            "user@example.org",
            "host$",
            "a",
        ] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
        assert!(UserName::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn refuses_escapes_and_garbage() {
        assert_eq!(UserName::parse(""), Err(NameError::Empty));
        assert_eq!(
            UserName::parse(&"a".repeat(300)),
            Err(NameError::TooLong(300))
        );
        assert!(matches!(
            UserName::parse(".."),
            Err(NameError::BadStart(_, '.'))
        ));
        assert!(matches!(
            UserName::parse("../x"),
            Err(NameError::BadStart(_, '.'))
        ));
        assert!(matches!(
            UserName::parse("a/../b"),
            Err(NameError::BadChar(_, '/'))
        ));
        assert!(matches!(
            UserName::parse("x\0y"),
            Err(NameError::BadChar(_, '\0'))
        ));
        assert!(matches!(
            UserName::parse("-rf"),
            Err(NameError::BadStart(_, '-'))
        ));
        assert!(matches!(
            UserName::parse("a b"),
            Err(NameError::BadChar(_, ' '))
        ));
        assert!(matches!(
            UserName::parse("a:b"),
            Err(NameError::BadChar(_, ':'))
        ));
        assert!(matches!(
            UserName::parse("é"),
            Err(NameError::BadChar(_, 'é'))
        ));
        let e = UserName::parse("x\0y").map(|_| ()).unwrap_err_or_default();
        assert!(e.contains("\\0"), "NUL must be shown escaped: {e}");
    }

    trait ErrText {
        fn unwrap_err_or_default(self) -> String;
    }
    impl ErrText for Result<(), NameError> {
        fn unwrap_err_or_default(self) -> String {
            self.err().map(|e| e.to_string()).unwrap_or_default()
        }
    }
}
