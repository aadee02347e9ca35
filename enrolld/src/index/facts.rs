//! What a listing keeps of each user's record and counters ([`Facts`]).

use twofold_policy::record::Override;
use twofold_policy::store::UserState;

/// What a listing needs of a record and its counters (never the secret), compact: a listing
/// of 100,000 users keeps one of these per user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Which of the optional fields are present (the `HAS_*` bits).
    has: u8,
    enrolled_at: u64,
    required_since: u64,
    last_login: u64,
    recovery_codes_left: u32,
    authenticators: u8,
    /// The admin override and where the last login came from: most users have neither.
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    admin_override: Option<Override>,
    last_login_from: Option<String>,
}

const HAS_ENROLLMENT: u8 = 1;
const HAS_REQUIRED_SINCE: u8 = 2;
const HAS_LAST_LOGIN: u8 = 4;

impl Facts {
    /// The facts of a user's state as read.
    pub fn of(state: &UserState) -> Facts {
        let record = state.record.as_ref();
        let enrollment = record.and_then(|r| r.enrollment.as_ref());
        let mut f = Facts::default();
        if let Some(e) = enrollment {
            f.has |= HAS_ENROLLMENT;
            f.enrolled_at = e.enrolled_at;
            f.recovery_codes_left = u32::try_from(e.recovery_codes.len()).unwrap_or(u32::MAX);
            f.authenticators = u8::try_from(e.authenticators.len()).unwrap_or(u8::MAX);
        }
        if let Some(t) = record.and_then(|r| r.required_since) {
            f.has |= HAS_REQUIRED_SINCE;
            f.required_since = t;
        }
        if let Some(t) = state.counters.last_login {
            f.has |= HAS_LAST_LOGIN;
            f.last_login = t;
        }
        let rare = Rare {
            admin_override: record.and_then(|r| r.admin_override.clone()),
            last_login_from: state.counters.last_login_from.clone(),
        };
        if rare != Rare::default() {
            f.rare = Some(Box::new(rare));
        }
        f
    }

    /// Has a confirmed enrollment.
    pub fn enrolled(&self) -> bool {
        self.has & HAS_ENROLLMENT != 0
    }

    /// When it was enrolled.
    pub fn enrolled_at(&self) -> Option<u64> {
        self.enrolled().then_some(self.enrolled_at)
    }

    /// Unused recovery codes (when enrolled).
    pub fn recovery_codes_left(&self) -> Option<u32> {
        self.enrolled().then_some(self.recovery_codes_left)
    }

    /// How many authenticators (when enrolled).
    pub fn authenticators(&self) -> Option<u32> {
        self.enrolled().then_some(u32::from(self.authenticators))
    }

    /// When the requirement first met the user unenrolled.
    pub fn required_since(&self) -> Option<u64> {
        (self.has & HAS_REQUIRED_SINCE != 0).then_some(self.required_since)
    }

    /// Last successful login with a code.
    pub fn last_login(&self) -> Option<u64> {
        (self.has & HAS_LAST_LOGIN != 0).then_some(self.last_login)
    }

    /// The admin override.
    pub fn admin_override(&self) -> Option<&Override> {
        self.rare.as_ref().and_then(|r| r.admin_override.as_ref())
    }

    /// Where the last login came from.
    pub fn last_login_from(&self) -> Option<&str> {
        self.rare
            .as_ref()
            .and_then(|r| r.last_login_from.as_deref())
    }
}
