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

/// The file google-authenticator keeps in each home directory.
pub const GA_FILE: &str = ".google_authenticator";
/// The largest `~/.google_authenticator` read (google-authenticator's own limit too).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The largest clock offset imported (`TIME_SKEW` × step), in seconds.
pub const MAX_SKEW_SECS: u64 = 25 * 3600;
/// Step lengths twofold takes from another tool (the policy's own range is 15 s to 5 min;
/// google-authenticator's is 1 to 60 s).
pub const STEP_RANGE: std::ops::RangeInclusive<u64> = 15..=60;
/// Scratch codes imported at most (google-authenticator's tool makes at most 10).
pub const MAX_SCRATCH: usize = 16;
/// Why a counter-based token is not imported.
pub const HOTP_REFUSED: &str = "HOTP (counter-based) is not supported; re-enroll with TOTP";
/// Steps either side twofold's window can reach at most (the policy allows 0 to 3).
const MAX_POLICY_WINDOW: u64 = 3;
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

/// google-authenticator's base32 decoder (`base32_decode` of libpam-google-authenticator):
/// space, tab, CR, LF and `-` skipped; `0`, `1`, `8` taken for `O`, `L`, `B`; letters in
/// either case and `2`–`7`; anything else (`=` too) makes the text invalid; leftover bits
/// at the end are dropped. `None` when invalid or empty.
pub fn ga_base32_decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8 + 1));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in text {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'-') {
            continue;
        }
        let ch = match b {
            b'0' => b'O',
            b'1' => b'L',
            b'8' => b'B',
            other => other,
        };
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a',
            b'2'..=b'7' => ch - b'2' + 26,
            _ => return None,
        };
        buffer = ((buffer << 5) | u32::from(v)) & 0xffff;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The value of google-authenticator's option `key`: the rest of the first line that starts
/// with `" KEY` followed by the end, a space, a tab or a line end (leading blanks skipped),
/// as its `get_cfg_value` finds it.
fn ga_option<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    for line in text.split(['\r', '\n']) {
        let Some(rest) = line.strip_prefix("\" ").and_then(|r| r.strip_prefix(key)) else {
            continue;
        };
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Some(rest.trim_start_matches([' ', '\t']));
        }
    }
    None
}

/// An unsigned number as google-authenticator reads one with `strtoul`: digits (after
/// leading blanks), then the end or a blank.
fn ga_uint(value: &str) -> Option<u64> {
    let v = value.trim_start_matches([' ', '\t']);
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, rest) = v.split_at(end);
    if digits.is_empty() || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    digits.parse().ok()
}

/// A signed number as `strtol` reads it, 0 when there is none (google-authenticator's
/// `TIME_SKEW` and `HOTP_COUNTER`); `None` past the range of `i64`.
fn strtol(value: &str) -> Option<i64> {
    let v = value.trim_start_matches([' ', '\t']);
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let digits = v.get(..end).unwrap_or("");
    if digits.is_empty() {
        return Some(0);
    }
    let n: i64 = digits.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Parses the text of a `~/.google_authenticator` (see the module doc). `Err` says why the
/// file is not imported.
pub fn parse_google_authenticator(bytes: &[u8]) -> Result<Token, String> {
    if bytes.contains(&0) {
        return Err("the file holds a NUL byte (google-authenticator refuses it too)".into());
    }
    let text: Zeroizing<String> = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
    let first_len = text.find('\n').unwrap_or(text.len());
    let first = text.get(..first_len).unwrap_or("");
    let raw = ga_base32_decode(first.as_bytes()).ok_or_else(|| {
        "line 1 holds no base32 secret that google-authenticator can decode".to_owned()
    })?;
    if raw.len() < 16 {
        return Err(format!(
            "the secret has {} bits and twofold needs at least 128: enroll again with `twofold enroll`",
            raw.len() * 8
        ));
    }
    let secret = Secret::from_bytes(&raw).map_err(|e| e.to_string())?;
    drop(raw);
    let mut notes = Vec::new();
    if !text.contains("\" TOTP_AUTH") {
        return Err(HOTP_REFUSED.into());
    }
    if ga_option(&text, "HOTP_COUNTER").is_some() {
        notes.push("HOTP_COUNTER ignored: the file is for time-based codes (TOTP_AUTH)".into());
    }
    let period = match ga_option(&text, "STEP_SIZE") {
        None => 30,
        Some(v) => match ga_uint(v) {
            Some(s @ 1..=60) => s,
            _ => {
                return Err(
                    "invalid STEP_SIZE (google-authenticator refuses every code with it)".into(),
                );
            }
        },
    };
    if !STEP_RANGE.contains(&period) {
        return Err(format!(
            "STEP_SIZE {period}: twofold imports steps of {} to {} seconds",
            STEP_RANGE.start(),
            STEP_RANGE.end()
        ));
    }
    let size = match ga_option(&text, "WINDOW_SIZE") {
        None => 3,
        Some(v) => match ga_uint(v) {
            Some(w @ 1..=100) => w,
            _ => {
                return Err(
                    "invalid WINDOW_SIZE (google-authenticator refuses every code with it)".into(),
                );
            }
        },
    };
    // google-authenticator checks steps -((size-1)/2) ..= size/2 around the current one.
    let window = ((size - 1) / 2, size / 2);
    let skew = match ga_option(&text, "TIME_SKEW") {
        None => 0,
        Some(v) => strtol(v).ok_or_else(|| "invalid TIME_SKEW".to_owned())?,
    };
    if skew.unsigned_abs().saturating_mul(period) > MAX_SKEW_SECS {
        return Err(format!(
            "TIME_SKEW of {skew} steps ({} s) is more than 25 hours: set the clock of the phone or the server right, then enroll again",
            skew.unsigned_abs().saturating_mul(period)
        ));
    }
    if skew != 0 {
        notes.push(format!(
            "clock offset (TIME_SKEW) of {skew} steps kept: codes are checked around the server's time {:+} s",
            skew.saturating_mul(i64::try_from(period).unwrap_or(30))
        ));
    }
    let mut last_step = None;
    if let Some(v) = ga_option(&text, "DISALLOW_REUSE") {
        for word in v.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let step: u64 = word.parse().map_err(|_| {
                "invalid DISALLOW_REUSE list (google-authenticator refuses every code with it)"
                    .to_owned()
            })?;
            last_step = Some(last_step.map_or(step, |l: u64| l.max(step)));
        }
    } else {
        notes.push(
            "the file did not refuse a code used twice (no DISALLOW_REUSE): twofold does".into(),
        );
    }
    if let Some(v) = ga_option(&text, "RATE_LIMIT") {
        // Only numbers are echoed: the words are the user's, and the note reaches the admin's
        // terminal (an escape sequence could rewrite the report's lines).
        let number = |w: &str| -> String {
            if !w.is_empty() && w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()) {
                w.to_owned()
            } else {
                "?".to_owned()
            }
        };
        let mut words = v.split([' ', '\t']).filter(|w| !w.is_empty());
        let (n, s) = (
            number(words.next().unwrap_or("?")),
            number(words.next().unwrap_or("?")),
        );
        notes.push(format!(
            "RATE_LIMIT ({n} logins in {s} s) replaced by twofold's throttling of wrong codes"
        ));
    }
    let (scratch, note) = ga_scratch_codes(&text);
    notes.extend(note);
    Ok(Token {
        secret,
        params: Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period,
        },
        skew,
        last_step,
        ahead: window.1,
        window: Some(window),
        scratch,
        skew_learned: ga_option(&text, "TIME_SKEW").is_some(),
        notes,
    })
}

/// The scratch codes: after line 1, blank lines and option lines (`"…`) skipped, each line of
/// exactly 8 digits (no leading zero, as google-authenticator's range check has it) is one;
/// the first other line ends them, as it ends google-authenticator's own search.
fn ga_scratch_codes(text: &str) -> (Vec<Zeroizing<String>>, Option<String>) {
    let mut codes = Vec::new();
    let mut note = None;
    for (i, line) in text.split('\n').enumerate().skip(1) {
        let l = line.trim_end_matches('\r');
        if l.is_empty() || l.starts_with('"') {
            continue;
        }
        let code = l.trim_start_matches([' ', '\t']);
        let is_code =
            code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0');
        if !is_code {
            note = Some(format!(
                "line {}: not a scratch code; it and the lines after it are not read (google-authenticator stops there too)",
                i + 1
            ));
            break;
        }
        if codes.len() == MAX_SCRATCH {
            note = Some(format!(
                "only the first {MAX_SCRATCH} scratch codes are imported"
            ));
            break;
        }
        codes.push(Zeroizing::new(code.to_owned()));
    }
    (codes, note)
}

/// Why a `~/.google_authenticator` was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRefusal {
    /// The user has none: not an error for `--all`.
    Missing,
    /// Anything else, in words (never the file's content).
    Refused(String),
}

impl std::fmt::Display for ReadRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadRefusal::Missing => write!(f, "no ~/{GA_FILE}"),
            ReadRefusal::Refused(why) => f.write_str(why),
        }
    }
}

/// Opens the home directory `home` (from the user database) without following a symlink.
fn open_home(home: &Path) -> Result<OwnedFd, ReadRefusal> {
    if !home.is_absolute() {
        return Err(ReadRefusal::Refused(format!(
            "home directory {:?} in the user database is not an absolute path",
            home.display().to_string()
        )));
    }
    nix::fcntl::open(
        home,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        ReadRefusal::Refused(match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => format!(
                "home directory {} is a symbolic link or not a directory: not followed",
                home.display()
            ),
            nix::errno::Errno::ENOENT => format!("home directory {} is missing", home.display()),
            e => format!("home directory {}: {}", home.display(), e.desc()),
        })
    })
}

/// Whether the user with home `home` has a `~/.google_authenticator` (any kind of entry,
/// symbolic links not followed): for `twofold doctor`.
pub fn has_google_authenticator(home: &Path) -> Result<bool, ReadRefusal> {
    let dir = open_home(home)?;
    match nix::sys::stat::fstatat(dir.as_fd(), GA_FILE, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(ReadRefusal::Refused(format!(
            "{}/{GA_FILE}: {}",
            home.display(),
            e.desc()
        ))),
    }
}

/// Reads the `~/.google_authenticator` of the user `uid` whose home directory is `home` (from
/// the user database), as root, so that the user cannot make it read anything else: the home
/// directory opened without following a symbolic link, the file looked at without following
/// one, then opened (`O_NOFOLLOW`, `O_NONBLOCK`: a FIFO does not block) and checked on the
/// open descriptor before one byte is read: the same file, a regular file, owned by `uid`,
/// no permission for group or others (google-authenticator's own rule: 0600 or 0400), at most
/// [`MAX_FILE_BYTES`]; then read up to one byte past that. The content is wiped when dropped.
pub fn read_google_authenticator(home: &Path, uid: u32) -> Result<Zeroizing<Vec<u8>>, ReadRefusal> {
    read_google_authenticator_written(home, uid).map(|(bytes, _)| bytes)
}

/// [`read_google_authenticator`], with the file's modification time (Unix seconds, 0 before
/// 1970) after it was read, for [`after_last_write`].
pub fn read_google_authenticator_written(
    home: &Path,
    uid: u32,
) -> Result<(Zeroizing<Vec<u8>>, u64), ReadRefusal> {
    let path = format!("{}/{GA_FILE}", home.display());
    let refuse = |why: String| ReadRefusal::Refused(format!("{path}: {why}"));
    let dir = open_home(home)?;
    let before = match nix::sys::stat::fstatat(dir.as_fd(), GA_FILE, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Err(ReadRefusal::Missing),
        Err(e) => return Err(refuse(e.desc().into())),
    };
    let kind = SFlag::from_bits_truncate(before.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(refuse(format!(
            "{}, not a regular file: not opened",
            kind_name(kind)
        )));
    }
    check_stat(&before, uid).map_err(refuse)?;
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        GA_FILE,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| refuse(e.desc().into()))?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| refuse(e.desc().into()))?;
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
        return Err(refuse("replaced while it was being opened".into()));
    }
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(refuse(format!("{}, not a regular file", kind_name(kind))));
    }
    check_stat(&st, uid).map_err(refuse)?;
    let file = std::fs::File::from(fd);
    let mut out = Zeroizing::new(Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0)));
    use std::io::Read as _;
    let mut limited = (&file).take(MAX_FILE_BYTES + 1);
    let mut buf = Zeroizing::new([0u8; 4096]);
    loop {
        match limited.read(buf.as_mut()) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(refuse(format!("cannot read: {e}"))),
        }
    }
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "grew past {MAX_FILE_BYTES} bytes while it was read"
        )));
    }
    if out.is_empty() {
        return Err(refuse("empty".into()));
    }
    let written = nix::sys::stat::fstat(file.as_fd())
        .map_err(|e| refuse(e.desc().into()))?
        .st_mtime;
    Ok((out, u64::try_from(written).unwrap_or(0)))
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        k if k == SFlag::S_IFLNK => "a symbolic link",
        k if k == SFlag::S_IFIFO => "a FIFO",
        k if k == SFlag::S_IFSOCK => "a socket",
        k if k == SFlag::S_IFCHR => "a character device",
        k if k == SFlag::S_IFBLK => "a block device",
        k if k == SFlag::S_IFDIR => "a directory",
        _ => "not a regular file",
    }
}

fn check_stat(st: &nix::sys::stat::FileStat, uid: u32) -> Result<(), String> {
    if st.st_uid != uid {
        return Err(format!(
            "owned by uid {}, not by the user (uid {uid}): not read",
            st.st_uid
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & !0o600 != 0 {
        return Err(format!(
            "mode {mode:04o}: only its owner may read or write it (0600 or 0400, as google-authenticator requires): not read"
        ));
    }
    if st.st_size < 1 || st.st_size as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes: more than {MAX_FILE_BYTES} (or empty): not read",
            st.st_size
        ));
    }
    Ok(())
}

/// One line of a `users.oath`: the user and the token, or why it is not imported.
#[derive(Debug)]
pub struct OathLine {
    /// 1-based line number.
    pub line: usize,
    /// The user named on the line (when there is one).
    pub user: Option<String>,
    /// The token, or why not.
    pub token: Result<Token, String>,
}

/// The digits and step of a liboath token type: `HOTP/T30`, `HOTP/T30/6`, `/7`, `/8`, the
/// same with `T60`; `Err` for the event-based `HOTP`, `HOTP/E`, `HOTP/E/6`…`8`, and for any
/// other text (liboath skips such lines).
fn oath_type(t: &str) -> Result<(u8, u64), String> {
    match t {
        "HOTP" | "HOTP/E" | "HOTP/E/6" | "HOTP/E/7" | "HOTP/E/8" => Err(HOTP_REFUSED.into()),
        _ => {
            let step = if t.starts_with("HOTP/T30") {
                30
            } else if t.starts_with("HOTP/T60") {
                60
            } else {
                return Err(format!(
                    "unknown token type {:?} (liboath knows HOTP/T30, HOTP/T60, with /6, /7 or /8, and the counter-based HOTP/E)",
                    crate::logfmt::value(t)
                ));
            };
            let digits = match t.get(8..).unwrap_or("?") {
                "" | "/6" => 6,
                "/7" => 7,
                "/8" => 8,
                _ => {
                    return Err(format!("unknown token type {:?}", crate::logfmt::value(t)));
                }
            };
            Ok((digits, step))
        }
    }
}

/// Hex as liboath's `oath_hex2bin` reads it (pairs of hex digits, either case).
fn hex_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let val = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let (hi, lo) = (pair.first().copied()?, pair.get(1).copied()?);
        out.push((val(hi)? << 4) | val(lo)?);
    }
    Some(out)
}

/// liboath's TIME field, `%Y-%m-%dT%H:%M:%SL` (local time, marked `L`), read as if it were
/// UTC: Unix seconds give or take the local zone's offset.
fn oath_time(t: &str) -> Option<u64> {
    let t = t.strip_suffix('L')?;
    let b = t.as_bytes();
    if b.len() != 19
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// The step whose code is `code`, the last one the old module accepted: searched from 14
/// hours before `at` to 12 hours after it (`at` is local time read as UTC, and zones run from
/// UTC−12 to UTC+14), never past `now`'s step + 3 (the widest window twofold can have), or
/// around `now` when the time is not known; the latest match. `None` when no step matches.
pub fn last_step_of(
    secret: &Secret,
    params: Params,
    code: &str,
    at: Option<u64>,
    now: u64,
) -> Option<u64> {
    let code = crate::totp::normalize_code(code, params.digits)?;
    let current = crate::totp::step_of(now, params);
    // pam_oath (window 5 by default) accepts codes further ahead than twofold's window can
    // reach: its last code may be one of them.
    let reach = MAX_POLICY_WINDOW.max(OATH_WINDOW);
    let top = current.saturating_add(reach);
    let (lo, hi) = match at {
        Some(t) => (
            crate::totp::step_of(t.saturating_sub(14 * 3600), params),
            crate::totp::step_of(t.saturating_add(12 * 3600), params).min(top),
        ),
        None => (current.saturating_sub(reach), top),
    };
    let mut found = None;
    let mut step = lo;
    while step <= hi {
        let at = step.saturating_mul(params.period);
        if let Ok(c) = crate::totp::code_at(secret, params, at) {
            use subtle::ConstantTimeEq;
            if bool::from(c.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        step += 1;
    }
    found
}

/// Parses a `users.oath` (see the module doc): one [`OathLine`] per line that is neither
/// blank nor a comment (`#`). A user named on more than one line is imported from the first.
pub fn parse_oath(text: &str, now: u64) -> Vec<OathLine> {
    let mut out: Vec<OathLine> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let mut fields = raw.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
        let Some(kind) = fields.next() else {
            continue;
        };
        if kind.starts_with('#') {
            continue;
        }
        let user = fields.next().map(str::to_owned);
        let token = oath_fields(kind, user.as_deref(), &mut fields, now);
        let token = match (&user, token) {
            (Some(u), Ok(t)) => match out.iter().find(|l| l.user.as_deref() == Some(u.as_str())) {
                Some(first) => Err(format!(
                    "user {:?} is also on line {}: only that first line is imported (liboath uses the first line that matches)",
                    crate::logfmt::value(u),
                    first.line
                )),
                None => Ok(t),
            },
            (_, t) => t,
        };
        out.push(OathLine { line, user, token });
    }
    out
}

fn oath_fields<'a>(
    kind: &str,
    user: Option<&str>,
    fields: &mut impl Iterator<Item = &'a str>,
    now: u64,
) -> Result<Token, String> {
    let (digits, period) = oath_type(kind)?;
    let user = user.ok_or("no user name after the token type")?;
    crate::UserName::parse(user)
        .map_err(|e| format!("user name {:?}: {e}", crate::logfmt::value(user)))?;
    let pin = fields.next().ok_or("no PIN field (`-` for none)")?;
    let mut notes = Vec::new();
    match pin {
        "-" => {}
        "+" => notes.push(
            "PIN field `+` (checked by another module) not imported: twofold asks for the code alone"
                .into(),
        ),
        _ => notes.push(
            "a PIN is set on this line and is not imported: twofold asks for the code alone (the password stays the first factor)"
                .into(),
        ),
    }
    let hex = fields.next().ok_or("no secret (hex) after the PIN")?;
    let raw = hex_decode(hex).ok_or("the secret is not hex (pairs of 0-9, a-f)")?;
    if raw.len() < 16 {
        return Err(format!(
            "the secret has {} bits and twofold needs at least 128: enroll again with `twofold enroll`",
            raw.len() * 8
        ));
    }
    if raw.len() > 32 {
        return Err(format!(
            "the secret has {} bytes: liboath reads at most 32 (it refuses this line too)",
            raw.len()
        ));
    }
    let secret = Secret::from_bytes(&raw).map_err(|e| e.to_string())?;
    drop(raw);
    if let Some(counter) = fields.next()
        && counter.parse::<u64>().is_err()
    {
        return Err("the COUNTER field is not a number".into());
    }
    let last_code = fields.next();
    let at = match fields.next() {
        Some(t) => Some(
            oath_time(t).ok_or("the TIME field is not liboath's time (YYYY-MM-DDTHH:MM:SSL)")?,
        ),
        None => None,
    };
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits,
        period,
    };
    let last_step = match last_code {
        Some(code) => {
            let step = last_step_of(&secret, params, code, at, now);
            if step.is_none() {
                notes.push(
                    "the last code (LASTOTP) matches no step near its time: every code up to the import is taken as used"
                        .into(),
                );
            }
            step
        }
        None => None,
    };
    let used = last_code.is_some();
    Ok(Token {
        secret,
        params,
        skew: 0,
        last_step,
        // liboath writes LASTOTP at every accepted code: a line without it was never used, so
        // nothing ahead of the current step needs refusing beyond twofold's own window. A line
        // with it was used by pam_oath, whose window (5 by default) reaches further ahead.
        ahead: if used { OATH_WINDOW } else { 0 },
        window: None,
        scratch: Vec::new(),
        skew_learned: false,
        notes,
    })
}

/// Accounts for what the file's last write says (`written`, its modification time): a step
/// google-authenticator accepted without listing it in `DISALLOW_REUSE` (the third of three
/// codes in a row that reset its clock offset, which writes `TIME_SKEW` instead) is at most
/// the step its window reached at that write. Only a file with `TIME_SKEW` (an offset was
/// learned once) and a known last step is raised: without one, [`last_step_at_import`] takes
/// every step up to the import as used already. The cost: a file written in the last minute
/// or two (a login through the old module) makes the app's codes work again that much later.
pub fn after_last_write(token: &mut Token, written: u64) {
    if !token.skew_learned {
        // Every code it accepted is listed (DISALLOW_REUSE) or, without the list, every step
        // up to the import is taken as used.
        return;
    }
    if let Some(s) = token.last_step {
        let step = crate::totp::step_of(written, token.params);
        // The reset's offset is the average of three within ±1 of each other: one more step.
        let reach = crate::totp::skewed_step(step, token.skew).saturating_add(token.ahead.max(1));
        token.last_step = Some(s.max(reach));
    }
}

/// The last step to store for an imported token at `now` with the policy's `window`: the
/// old module's last accepted step when known (never past what can be accepted now), else
/// every step the old module or twofold could accept at this moment (current + skew + the
/// wider of the two windows' upper sides), so that no code that may have been used before the
/// import is accepted after it.
pub fn last_step_at_import(token: &Token, now: u64, window: u64) -> u64 {
    let current = crate::totp::step_of(now, token.params);
    let centre = if token.skew >= 0 {
        current.saturating_add(token.skew.unsigned_abs())
    } else {
        current.saturating_sub(token.skew.unsigned_abs())
    };
    let top = centre.saturating_add(window.max(token.ahead));
    match token.last_step {
        Some(s) => s.min(top),
        None => top,
    }
}

#[cfg(test)]
mod tests {
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
}
