//! Importing authenticators from the tools twofold replaces: google-authenticator's
//! `~/.google_authenticator` (libpam-google-authenticator) and pam_oath's `users.oath`
//! (oath-toolkit).
//!
//! The parsers read what those tools read, the way they read it: the first line of
//! `~/.google_authenticator` is decoded as google-authenticator's own base32 decoder does
//! (spaces, tabs and dashes skipped, `0`, `1`, `8` read as `O`, `L`, `B`, any case, no
//! padding), its option lines are found as its `get_cfg_value` finds them, and its scratch
//! codes are the 8-digit lines it would accept. A `users.oath` line is `TYPE USER PIN HEX
//! [COUNTER [LASTOTP [TIME]]]` with liboath's types (`HOTP/T30`, `HOTP/T60/8`, …).
//!
//! Nothing here prints a secret, a code or a PIN: errors and notes name lines, options and
//! numbers only. [`read_google_authenticator`] opens the file of a user as root without
//! letting that user point it anywhere else.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use zeroize::Zeroizing;

use crate::totp::{Algorithm, Params, Secret};

mod google_authenticator;
mod home;
mod oath;

pub use google_authenticator::*;
pub use home::*;
pub use oath::*;

/// The file google-authenticator keeps in each home directory.
pub const GA_FILE: &str = ".google_authenticator";
/// The largest `~/.google_authenticator` read (google-authenticator's own limit too).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The largest clock offset imported (`TIME_SKEW` × step), in seconds.
pub use crate::record::MAX_SKEW_SECS;
/// Step lengths twofold takes from another tool (the policy's own range is 15 s to 5 min;
/// google-authenticator's is 1 to 60 s).
pub const STEP_RANGE: std::ops::RangeInclusive<u64> = 15..=60;
/// Scratch codes imported at most (google-authenticator's tool makes at most 10).
pub const MAX_SCRATCH: usize = 16;
/// Why a counter-based token is not imported.
pub const HOTP_REFUSED: &str = "HOTP (counter-based) is not supported; re-enroll with TOTP";
/// Steps either side twofold's window can reach at most (the policy allows 0 to 3).
pub(crate) const MAX_POLICY_WINDOW: u64 = 3;
/// Steps either side pam_oath accepts a time-based code by default (its `window=5`): a code
/// up to this far ahead of the server's clock may be the LASTOTP of a `users.oath` line.
pub const OATH_WINDOW: u64 = 5;

/// A token read from another tool's file, ready to be enrolled. The secret is wiped when
/// dropped, and `Debug` never shows it or the scratch codes.
pub struct Token {
    /// The shared secret.
    pub secret: Secret,
    /// Algorithm (SHA-1 for both tools), digits and step.
    pub params: Params,
    /// The clock offset the old module had learned, in steps (google-authenticator's
    /// `TIME_SKEW`): the window is centred on the current step plus this.
    pub skew: i64,
    /// The last step the old module accepted, when its file says (`DISALLOW_REUSE`, or
    /// `LASTOTP` and `TIME`): only a newer step is accepted after the import.
    pub last_step: Option<u64>,
    /// How many steps ahead of the current one the old module accepted codes (its window's
    /// upper side): without `last_step`, every step up to current + skew + this is taken as
    /// used.
    pub ahead: u64,
    /// google-authenticator's window, steps before and after the current one.
    pub window: Option<(u64, u64)>,
    /// Scratch codes (8 digits), to become one-time recovery codes.
    pub scratch: Vec<Zeroizing<String>>,
    /// The old module learned a clock offset (google-authenticator's `TIME_SKEW` is in the
    /// file): the code that set it was accepted without being listed (see
    /// [`after_last_write`]).
    pub skew_learned: bool,
    /// What the import changes or leaves out, for the report (never a secret or a code).
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("params", &self.params)
            .field("skew", &self.skew)
            .field("last_step", &self.last_step)
            .field("ahead", &self.ahead)
            .field("window", &self.window)
            .field("scratch", &self.scratch.len())
            .field("notes", &self.notes)
            .finish()
    }
}

/// The last step to store for an imported token at `now` with the policy's `window`: the
/// old module's last accepted step when known (never past what can be accepted now), else
/// every step the old module or twofold could accept at this moment (current + skew + the
/// wider of the two windows' upper sides), so that no code that may have been used before the
/// import is accepted after it.
pub fn last_step_at_import(token: &Token, now: u64, window: u64) -> u64 {
    let current = crate::totp::step_of(now, token.params);
    let centre = crate::totp::skewed_step(current, token.skew);
    let top = centre.saturating_add(window.max(token.ahead));
    match token.last_step {
        Some(s) => s.min(top),
        None => top,
    }
}

#[cfg(test)]
mod tests {
    use super::google_authenticator::*;
    use super::oath::*;
    use super::*;

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn ga_decoder_is_forgiving_as_the_original() {
        let plain = ga_base32_decode(SECRET.as_bytes()).map(|v| v.to_vec());
        assert_eq!(plain.as_deref(), Some(&b"12345678901234567890"[..]));
        for variant in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV-GY3T QOJQ\tGEZDGNBVGY3TQOJQ\r",
            "GEZDGNBVGY3TQ0JQGEZDGNBVGY3TQ0JQ", // 0 for O
        ] {
            assert_eq!(
                ga_base32_decode(variant.as_bytes()).map(|v| v.to_vec()),
                plain,
                "{variant}"
            );
        }
        assert!(ga_base32_decode(b"GEZDGNBV=").is_none());
        assert!(ga_base32_decode(b"GEZ!").is_none());
        assert!(ga_base32_decode(b"").is_none());
        assert!(ga_base32_decode(b"A").is_none());
    }

    fn ga(text: &str) -> Result<Token, String> {
        parse_google_authenticator(text.as_bytes())
    }

    #[test]
    fn ga_file_as_the_tool_writes_it() -> Result<(), String> {
        let t = ga(&format!(
            "{SECRET}\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 56666666 56666668\n\" TOTP_AUTH\n12345678\n87654321\n"
        ))?;
        assert_eq!(t.params, Params::default());
        assert_eq!(t.window, Some((8, 8)));
        assert_eq!(t.ahead, 8);
        assert_eq!(t.last_step, Some(56_666_668));
        assert_eq!(t.scratch.len(), 2);
        assert_eq!(t.scratch[1].as_str(), "87654321");
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("RATE_LIMIT (3 logins in 30 s)"))
        );
        assert!(!format!("{t:?}").contains("12345678"));
        Ok(())
    }

    #[test]
    fn ga_refusals() {
        let hotp = ga(&format!("{SECRET}\n\" HOTP_COUNTER 1\n12345678\n"));
        assert_eq!(hotp.err().as_deref(), Some(HOTP_REFUSED));
        let short = ga("GEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n");
        assert!(short.err().is_some_and(|e| e.contains("80 bits")));
        let step = ga(&format!("{SECRET}\n\" STEP_SIZE 10\n\" TOTP_AUTH\n"));
        assert!(step.err().is_some_and(|e| e.contains("STEP_SIZE 10")));
        let bad = ga(&format!("{SECRET}\n\" WINDOW_SIZE 0\n\" TOTP_AUTH\n"));
        assert!(bad.err().is_some_and(|e| e.contains("WINDOW_SIZE")));
        let skew = ga(&format!("{SECRET}\n\" TIME_SKEW -3001\n\" TOTP_AUTH\n"));
        assert!(skew.err().is_some_and(|e| e.contains("25 hours")));
        let nul = parse_google_authenticator(format!("{SECRET}\n\0").as_bytes());
        assert!(nul.is_err());
        let garbage = ga("!!!!\n\" TOTP_AUTH\n");
        assert!(garbage.err().is_some_and(|e| !e.contains("!!!!")));
    }

    #[test]
    fn ga_skew_window_and_scratch_end() -> Result<(), String> {
        let t = ga(&format!(
            "{SECRET}\n\" TOTP_AUTH\n\" TIME_SKEW -2\n\" WINDOW_SIZE 4\n\" STEP_SIZE 60\n11111111\nxyz\n22222222\n"
        ))?;
        assert_eq!(t.skew, -2);
        assert_eq!(t.window, Some((1, 2)));
        assert_eq!(t.params.period, 60);
        assert_eq!(t.scratch.len(), 1);
        assert!(t.notes.iter().any(|n| n.contains("line 7")));
        assert_eq!(t.last_step, None);
        // Without DISALLOW_REUSE, every step up to current + skew + the wider side is used.
        let now = 1_800_000_000;
        let cur = now / 60;
        assert_eq!(last_step_at_import(&t, now, 1), cur - 2 + 2);
        assert_eq!(last_step_at_import(&t, now, 3), cur - 2 + 3);
        Ok(())
    }

    #[test]
    fn oath_lines() -> Result<(), String> {
        let secret = Secret::from_bytes(b"12345678901234567890").map_err(|e| e.to_string())?;
        let p = Params::default();
        let now = 1_800_000_000u64;
        let used_at = now - 95;
        let code = crate::totp::code_at(&secret, p, used_at).map_err(|e| e.to_string())?;
        let text = format!(
            "# comment\n\nHOTP/T30 alice - 3132333435363738393031323334353637383930 0 {} 2027-01-15T08:00:05L\nHOTP/T60/8\tbob\tsecretpin\t3132333435363738393031323334353637383930\nHOTP carol - 3132333435363738393031323334353637383930\nHOTP/T30 dave - 31zz\nTOTP erin - 00\nHOTP/T30 alice - 3132333435363738393031323334353637383930\n",
            code.as_str()
        );
        // 2027-01-15T08:00:05 UTC, as liboath would write it in a UTC zone.
        assert_eq!(oath_time("2027-01-15T08:00:05L"), Some(1_800_000_005));
        let lines = parse_oath(&text, now);
        assert_eq!(lines.len(), 6);
        let a = lines[0].token.as_ref().map_err(Clone::clone)?;
        assert_eq!(lines[0].line, 3);
        assert_eq!(a.last_step, Some(crate::totp::step_of(used_at, p)));
        let b = lines[1].token.as_ref().map_err(Clone::clone)?;
        assert_eq!((b.params.digits, b.params.period), (8, 60));
        assert!(b.notes.iter().any(|n| n.contains("PIN")));
        assert!(!b.notes.iter().any(|n| n.contains("secretpin")));
        assert_eq!(
            lines[2].token.as_ref().err().map(String::as_str),
            Some(HOTP_REFUSED)
        );
        assert!(
            lines[3]
                .token
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("not hex"))
        );
        assert!(
            lines[4]
                .token
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("unknown token type"))
        );
        assert!(
            lines[5]
                .token
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("line 3"))
        );
        Ok(())
    }

    #[test]
    fn fuse_mounts_over_a_home_or_the_file_are_found() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /home rw shared:2 - ext4 /dev/vdb rw
41 30 0:40 / /home/alice rw,nosuid,nodev shared:9 - fuse.sshfs alice@x: rw,user_id=1000
42 30 0:41 / /home/b\\040b/.google_authenticator rw - fuse b rw
43 30 0:42 / /home/carol/mnt rw - fuse.x c rw
44 22 0:43 / /srv/fuse rw - fuseblk d rw
";
        let at = |p: &str| fuse_mount_over(Path::new(p), info);
        assert_eq!(
            at("/home/alice/.google_authenticator"),
            Some(("/home/alice".to_owned(), "fuse.sshfs".to_owned()))
        );
        assert_eq!(
            at("/home/b b/.google_authenticator"),
            Some((
                "/home/b b/.google_authenticator".to_owned(),
                "fuse".to_owned()
            ))
        );
        // A FUSE mount elsewhere in the home, or beside it, is not in the way.
        assert_eq!(at("/home/carol/.google_authenticator"), None);
        assert_eq!(at("/home/alicex/.google_authenticator"), None);
        assert_eq!(
            at("/srv/fuse/u/.google_authenticator"),
            Some(("/srv/fuse".to_owned(), "fuseblk".to_owned()))
        );
        // This host's own table: no FUSE over the test's temporary homes.
        if let Ok(own) = std::fs::read_to_string("/proc/self/mountinfo") {
            assert_eq!(
                fuse_mount_over(Path::new("/tmp/x/.google_authenticator"), &own),
                None
            );
        }
    }
}
