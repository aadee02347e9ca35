//! The three policy modes and the five per-user statuses of the brief.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// How strongly 2FA applies to a user: the value of every `mode = "…"` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The user must use a second factor (and enroll if they have none).
    Required,
    /// The user may enroll; once enrolled, the code is asked.
    Optional,
    /// 2FA is never asked, even if the user enrolled.
    Disabled,
}

impl Mode {
    /// All modes, strongest first.
    pub const ALL: [Mode; 3] = [Mode::Required, Mode::Optional, Mode::Disabled];

    /// The spelling used in policy files, records, the CLI and D-Bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Required => "required",
            Mode::Optional => "optional",
            Mode::Disabled => "disabled",
        }
    }

    /// Strength for combining group rules: required > optional > disabled.
    pub fn strength(self) -> u8 {
        match self {
            Mode::Required => 2,
            Mode::Optional => 1,
            Mode::Disabled => 0,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode {0:?}: expected \"required\", \"optional\" or \"disabled\"")]
pub struct ModeParseError(pub String);

impl FromStr for Mode {
    type Err = ModeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Mode::Required),
            "optional" => Ok(Mode::Optional),
            "disabled" => Ok(Mode::Disabled),
            other => Err(ModeParseError(other.to_owned())),
        }
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"required\", \"optional\" or \"disabled\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
                v.parse().map_err(|e: ModeParseError| E::custom(e))
            }
        }
        d.deserialize_str(V)
    }
}

/// A user's 2FA status: the single word shown by the CLI, D-Bus and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Required but not enrolled: must enroll at the next login (within the grace period).
    Pending,
    /// Required and enrolled.
    Enforced,
    /// Optional and enrolled by the user's own choice.
    Enabled,
    /// Optional and not enrolled.
    Off,
    /// Disabled for this user: no code is asked.
    Exempt,
}

impl Status {
    /// All statuses, in the order the brief's table lists them.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Enforced,
        Status::Enabled,
        Status::Off,
        Status::Exempt,
    ];

    /// The status row of the brief for an effective mode and enrollment.
    pub fn of(mode: Mode, enrolled: bool) -> Status {
        match (mode, enrolled) {
            (Mode::Required, false) => Status::Pending,
            (Mode::Required, true) => Status::Enforced,
            (Mode::Optional, true) => Status::Enabled,
            (Mode::Optional, false) => Status::Off,
            (Mode::Disabled, _) => Status::Exempt,
        }
    }

    /// The word used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Enforced => "enforced",
            Status::Enabled => "enabled",
            Status::Off => "off",
            Status::Exempt => "exempt",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("Required".parse::<Mode>().is_err());
    }
}
