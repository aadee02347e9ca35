//! `/etc/passwd` and `/etc/group` read directly, for the names they hold, when that gives
//! exactly what NSS would: a login then reads each file once instead of asking `getpwnam`,
//! `getpwuid` and `getgrnam` (glibc's `files` module opens and parses the whole file again
//! for each, through every line before the one asked for).
//!
//! The files answer only when all of this holds, and otherwise [`Answer::AskNss`] sends the
//! caller to NSS as before:
//!
//! - `nsswitch.conf` has exactly one line for the database, its first source is `files`, and
//!   nothing in the file that glibc could read otherwise than this module does (an action
//!   `[...]` anywhere, a `#` that is not a comment line's first character, a byte outside
//!   printable ASCII; see `files_first`): then NSS returns the `files` answer for any name
//!   `files` holds, whatever comes after it;
//! - every line of the file is plain: no comment, no leading blank, no `+`/`-` entry, the
//!   right number of fields, decimal ids that fit 32 bits, no blank or control character in a
//!   name. A file with anything else (which glibc may skip or read differently) is not read
//!   here at all;
//! - the name is in the file. A name the file lacks (LDAP, SSSD, systemd's userdb) is NSS's.
//!
//! For such files glibc's `files` module answers `getpwnam(n)` with the first line named `n`,
//! `getpwuid(u)` with the first line with uid `u`, and `getgrnam(g)` with the first line
//! named `g`: the same lines chosen here.

use std::path::{Path, PathBuf};

/// The largest user database file read here (a bigger one goes to NSS).
const MAX_SIZE: usize = 64 << 20;
/// The longest line read here, and the largest `nsswitch.conf`.
const MAX_LINE: usize = 1 << 20;
/// How much of a file one read asks for.
const CHUNK: usize = 16 << 10;

/// Where the files are: `/etc`, or a test's directory.
#[derive(Debug, Clone)]
pub struct UserFiles {
    passwd: PathBuf,
    group: PathBuf,
    nsswitch: PathBuf,
    /// Whether `nsswitch.conf`, as first read through this value, lets the files answer
    /// first for `passwd` and for `group` (a login reads and parses it once for both).
    files_answer: std::cell::OnceCell<FilesAnswer>,
    /// The read buffer, kept from one scan to the next (a login scans `passwd`, then
    /// `group`): made and zeroed once.
    scratch: std::cell::RefCell<Vec<u8>>,
}

/// What `nsswitch.conf` says of the files ([`files_first`]).
#[derive(Debug, Clone, Copy, Default)]
struct FilesAnswer {
    passwd: bool,
    group: bool,
}

/// What the files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// The files hold the name, and NSS would give this.
    Found(T),
    /// Only NSS can say (see the module's documentation).
    AskNss,
}

/// An account as `/etc/passwd` gives it: the name's line, then the first line with its uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAccount {
    /// The name of the first line with the uid (what `getpwuid` answers).
    pub canonical: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid of the canonical line.
    pub gid: u32,
    /// The primary gid of the name's own line (the canonical line's, unless an alias's line
    /// names another group): what a session opened under that name starts with.
    pub typed_gid: u32,
}

impl Default for UserFiles {
    fn default() -> UserFiles {
        UserFiles::under(Path::new("/etc"))
    }
}

fn read_some(file: &mut std::fs::File, buf: &mut [u8]) -> Option<usize> {
    use std::io::Read;
    loop {
        match file.read(buf) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A small file as text (`nsswitch.conf`), whole: read without asking its size first, and a
/// read that comes back short is its end (a regular file's read stops short only there), so
/// the usual file costs an open, one read and a close.
fn read_small(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 4 << 10];
    let mut len = 0;
    loop {
        let want = buf.len() - len;
        let n = read_some(&mut file, buf.get_mut(len..)?)?;
        len += n;
        if n == 0 || n < want {
            break;
        }
        if len >= MAX_LINE {
            return None;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// A line as the scan hands it out: its bytes (without the newline) and where its colons are.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a [u8],
    marks: Marks,
}

/// The most fields a line of the files read here has (`/etc/passwd`: 7).
const MAX_COLONS: usize = 6;

impl<'a> Line<'a> {
    /// The `N` fields of the line split at `:`, or `None` if it has another number of them.
    fn fields<const N: usize>(&self) -> Option<[&'a [u8]; N]> {
        if N == 0 || N > MAX_COLONS + 1 || self.marks.count != N - 1 {
            return None;
        }
        let mut out: [&[u8]; N] = [&[]; N];
        let mut from = 0;
        for (k, slot) in out.iter_mut().enumerate() {
            let to = if k + 1 < N {
                *self.marks.colons.get(k)?
            } else {
                self.text.len()
            };
            *slot = self.text.get(from..to)?;
            from = to + 1;
        }
        Some(out)
    }
}

/// What one pass over a line found: its colons (offsets from its start) and any NUL.
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    /// The offsets of its first [`MAX_COLONS`] colons.
    colons: [usize; MAX_COLONS],
    /// How many colons it has (all of them, not only those kept).
    count: usize,
    nul: bool,
}

/// A byte repeated in every byte of a word: `ONES * b`.
const ONES: u64 = 0x0101_0101_0101_0101;

/// Every byte of `x` that is zero, as its high bit (exact: no carry crosses a byte).
fn zero_bytes(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    !(((x & !HIGH).wrapping_add(!HIGH)) | x | !HIGH)
}

/// `text` eight bytes at a time: each whole word (little-endian) with its offset, and then the
/// bytes after the last whole word with theirs.
fn words(text: &[u8]) -> (impl Iterator<Item = (usize, u64)> + '_, usize, &[u8]) {
    let chunks = text.chunks_exact(8);
    let rest = chunks.remainder();
    let words = chunks.enumerate().filter_map(|(i, w)| {
        let bytes = <[u8; 8]>::try_from(w).ok()?;
        Some((i * 8, u64::from_le_bytes(bytes)))
    });
    (words, text.len() - rest.len(), rest)
}

/// Where the first `byte` in `text` is, eight bytes at a time. (Not the `memchr` crate: its
/// run-time CPU detection runs CPUID at each load of the module, tens of µs in a VM.)
fn find_byte(text: &[u8], byte: u8) -> Option<usize> {
    let pattern = ONES * u64::from(byte);
    let (words, base, rest) = words(text);
    for (at, w) in words {
        let hits = zero_bytes(w ^ pattern);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
    }
    Some(base + rest.iter().position(|&b| b == byte)?)
}

/// The colons and NULs of `text`, eight bytes at a time: the files are read at every login,
/// and a byte-at-a-time loop over them costs more than the reads.
fn marks(text: &[u8]) -> Marks {
    let mut m = Marks::default();
    let note = |m: &mut Marks, at: usize| {
        if let Some(slot) = m.colons.get_mut(m.count) {
            *slot = at;
        }
        m.count += 1;
    };
    let (words, base, rest) = words(text);
    for (at, w) in words {
        m.nul |= zero_bytes(w) != 0;
        let mut colons = zero_bytes(w ^ (ONES * u64::from(b':')));
        while colons != 0 {
            note(&mut m, at + (colons.trailing_zeros() / 8) as usize);
            colons &= colons - 1;
        }
    }
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b':' => note(&mut m, base + i),
            0 => m.nul = true,
            _ => {}
        }
    }
    m
}

/// A line as the scan sees it: `None` for one glibc would skip or read its own way (empty, a
/// comment, a leading blank, a NUL byte: glibc reads a line as a C string, so a NUL ends it).
fn plain_line(text: &[u8]) -> Option<Line<'_>> {
    if text.is_empty() || matches!(text.first(), Some(b'#' | b' ' | b'\t' | b'\r')) {
        return None;
    }
    let marks = marks(text);
    (!marks.nul).then_some(Line { text, marks })
}

/// Reads `path` from its start, a chunk at a time, and hands `f` each line in turn (see
/// [`plain_line`]) until `f` breaks or the file ends; a scan that stops early reads no
/// further, as glibc's does not. `None` when the file cannot be read whole (or is too big).
fn each_line(
    path: &Path,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(Option<Line<'_>>) -> std::ops::ControlFlow<()>,
) -> Option<()> {
    let mut file = std::fs::File::open(path).ok()?;
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    // buf[start..len]: read, not yet handed out; `total`: bytes of the file read so far.
    let (mut start, mut len, mut total) = (0usize, 0usize, 0usize);
    loop {
        if len == buf.len() {
            if start > 0 {
                buf.copy_within(start..len, 0);
                len -= start;
                start = 0;
            } else if len >= MAX_LINE {
                return None;
            } else {
                buf.resize(len * 2, 0);
            }
        }
        let n = read_some(&mut file, buf.get_mut(len..)?)?;
        total += n;
        if total > MAX_SIZE {
            return None;
        }
        let end = len + n;
        // Only the new bytes can hold the next newline.
        let mut from = len;
        while let Some(i) = find_byte(buf.get(from..end)?, b'\n') {
            let line = buf.get(start..from + i)?;
            start = from + i + 1;
            from = start;
            if f(plain_line(line)).is_break() {
                return Some(());
            }
        }
        len = end;
        if n == 0 {
            // The last line, when the file does not end with a newline.
            if start < len {
                let _ = f(plain_line(buf.get(start..len)?));
            }
            return Some(());
        }
    }
}

/// The sources `nsswitch.conf` (its text) lists for `db`, read the way glibc reads the file
/// (`nss_database.c`); `None` when there is no such line, or whenever glibc's reading could
/// differ from this one:
///
/// - a line whose first non-blank byte is `#` is a comment; a `#` anywhere else is not one to
///   glibc (`files#x` is a module name), so it makes the whole file unusable here;
/// - a database name runs to a blank or a `:` (the colon is optional), case counts, and the
///   last line of a name wins: more than one line for `db` is refused;
/// - sources are separated by ASCII blanks only; anything outside printable ASCII refuses;
/// - any `[` anywhere refuses: an action can make NSS go on past a source, and one bad action
///   on any line makes glibc drop the whole file.
pub fn nsswitch_sources<'a>(nsswitch: &'a str, db: &str) -> Option<Vec<&'a str>> {
    let [sources] = nsswitch_sources_of(nsswitch, [db]);
    sources
}

/// [`nsswitch_sources`] for each of `dbs`, in one reading of the text.
fn nsswitch_sources_of<'a, const N: usize>(
    nsswitch: &'a str,
    dbs: [&str; N],
) -> [Option<Vec<&'a str>>; N] {
    // Per database: its line's sources, and whether it has more than one line.
    let mut found: [(Option<&str>, bool); N] = [(None, false); N];
    for line in nsswitch.split('\n') {
        let l = line.trim_start_matches([' ', '\t']);
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.bytes()
            .any(|b| b == b'#' || b == b'[' || !(b == b'\t' || (b' '..=b'~').contains(&b)))
        {
            return std::array::from_fn(|_| None);
        }
        let end = l.find([' ', '\t', ':']).unwrap_or(l.len());
        let name = l.get(..end);
        for (db, (sources, twice)) in dbs.iter().zip(found.iter_mut()) {
            if name != Some(*db) {
                continue;
            }
            if sources.is_some() {
                *twice = true;
            }
            let rest = l.get(end..).unwrap_or("").trim_start_matches([' ', '\t']);
            *sources = Some(rest.strip_prefix(':').unwrap_or(rest));
        }
    }
    found.map(|(sources, twice)| {
        sources.filter(|_| !twice).map(|sources| {
            sources
                .split([' ', '\t'])
                .filter(|s| !s.is_empty())
                .collect()
        })
    })
}

/// Whether `nsswitch.conf` (its text) makes the files answer first, for `passwd` and for
/// `group` ([`nsswitch_sources`]).
fn files_first(nsswitch: &str) -> FilesAnswer {
    let first = |s: &Option<Vec<&str>>| s.as_ref().is_some_and(|s| s.first() == Some(&"files"));
    let [passwd, group] = nsswitch_sources_of(nsswitch, ["passwd", "group"]);
    FilesAnswer {
        passwd: first(&passwd),
        group: first(&group),
    }
}

/// A name as the files may hold it: not empty, no blank or control character, no `:`, not a
/// `+`/`-` entry.
fn plain_name(s: &[u8]) -> bool {
    !s.is_empty()
        && !matches!(s.first(), Some(b'+' | b'-'))
        && s.iter().all(|&b| b > b' ' && b != 0x7f && b != b':')
}

/// A decimal id that fits 32 bits.
fn id(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

/// A passwd line's name, uid and gid, if it is plain.
fn passwd_line(line: Option<Line<'_>>) -> Option<(&[u8], u32, u32)> {
    let [name, _, uid, gid, _, _, _] = line?.fields::<7>()?;
    plain_name(name).then_some(())?;
    Some((name, id(uid)?, id(gid)?))
}

/// A group line's name, gid and member list, if it is plain.
fn group_line(line: Option<Line<'_>>) -> Option<(&[u8], u32, &[u8])> {
    let [name, _, gid, members] = line?.fields::<4>()?;
    plain_name(name).then_some(())?;
    let gid = id(gid)?;
    (members.is_empty() || members.split(|&b| b == b',').all(plain_name)).then_some(())?;
    Some((name, gid, members))
}

impl UserFiles {
    /// The files in `dir` (`passwd`, `group`, `nsswitch.conf`).
    pub fn under(dir: &Path) -> UserFiles {
        UserFiles {
            passwd: dir.join("passwd"),
            group: dir.join("group"),
            nsswitch: dir.join("nsswitch.conf"),
            files_answer: std::cell::OnceCell::new(),
            scratch: std::cell::RefCell::default(),
        }
    }

    /// Files that never answer: every lookup goes to NSS.
    pub fn nss_only() -> UserFiles {
        UserFiles {
            passwd: PathBuf::new(),
            group: PathBuf::new(),
            nsswitch: PathBuf::new(),
            files_answer: std::cell::OnceCell::from(FilesAnswer::default()),
            scratch: std::cell::RefCell::default(),
        }
    }

    fn files_answer(&self) -> FilesAnswer {
        *self.files_answer.get_or_init(|| {
            read_small(&self.nsswitch)
                .map(|t| files_first(&t))
                .unwrap_or_default()
        })
    }

    /// The account `name` names, as `getpwnam` and then `getpwuid` of its uid would give it.
    /// Only the lines up to the name's first one count (glibc stops there, and the first line
    /// with its uid is at or before it); each of them must be plain.
    pub fn account(&self, name: &str) -> Answer<FileAccount> {
        let name = name.as_bytes();
        if !plain_name(name) || !self.files_answer().passwd {
            return Answer::AskNss;
        }
        // Every line up to the name's (each must be plain): (uid, gid, end of its name in
        // `names`). The first of them with the name's uid is the canonical one.
        let mut names: Vec<u8> = Vec::new();
        let mut rows: Vec<(u32, u32, usize)> = Vec::new();
        let mut found = false;
        let mut plain = true;
        let mut buf = self.scratch.take();
        let read = each_line(&self.passwd, &mut buf, |line| {
            let Some((n, uid, gid)) = passwd_line(line) else {
                plain = false;
                return std::ops::ControlFlow::Break(());
            };
            names.extend_from_slice(n);
            rows.push((uid, gid, names.len()));
            if n == name {
                found = true;
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        });
        self.scratch.replace(buf);
        let (Some(()), true, true, Some(&(uid, typed_gid, _))) = (read, plain, found, rows.last())
        else {
            return Answer::AskNss;
        };
        let mut from = 0;
        for &(u, gid, to) in &rows {
            if u == uid {
                return match names.get(from..to).map(std::str::from_utf8) {
                    Some(Ok(canonical)) => Answer::Found(FileAccount {
                        canonical: canonical.to_owned(),
                        uid,
                        gid,
                        typed_gid,
                    }),
                    _ => Answer::AskNss,
                };
            }
            from = to;
        }
        Answer::AskNss
    }

    /// For each of `groups`, whether the user `user` (primary group `gid`) is in it, as
    /// `getgrnam` would tell (its gid is `gid`, or its member list names `user`); `AskNss`
    /// for a group the file does not hold, or for all when the file cannot answer. The lines
    /// up to the last group found count, and must be plain.
    pub fn membership(&self, user: &str, gid: u32, groups: &[&str]) -> Vec<Answer<bool>> {
        let mut out: Vec<Answer<bool>> = groups.iter().map(|_| Answer::AskNss).collect();
        if groups.is_empty() || !self.files_answer().group {
            return out;
        }
        let mut found = vec![false; groups.len()];
        let mut left = groups.len();
        let mut plain = true;
        let mut buf = self.scratch.take();
        let read = each_line(&self.group, &mut buf, |line| {
            let Some((n, g, members)) = group_line(line) else {
                plain = false;
                return std::ops::ControlFlow::Break(());
            };
            for (i, want) in groups.iter().enumerate() {
                if let (Some(seen), Some(slot)) = (found.get_mut(i), out.get_mut(i))
                    && !*seen
                    && want.as_bytes() == n
                {
                    *seen = true;
                    left -= 1;
                    let listed = !members.is_empty()
                        && members.split(|&b| b == b',').any(|m| m == user.as_bytes());
                    *slot = Answer::Found(g == gid || listed);
                }
            }
            if left == 0 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        self.scratch.replace(buf);
        if read.is_none() || !plain {
            return groups.iter().map(|_| Answer::AskNss).collect();
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // a panic here is a failed test
mod tests {
    use super::*;

    const NSS: &str = "passwd: files systemd\ngroup: files systemd\nshadow: files\n";

    fn files(nsswitch: &str, passwd: &str, group: &str) -> (tempfile::TempDir, UserFiles) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("nsswitch.conf"), nsswitch).unwrap();
        std::fs::write(t.path().join("passwd"), passwd).unwrap();
        std::fs::write(t.path().join("group"), group).unwrap();
        let f = UserFiles::under(t.path());
        (t, f)
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nal:x:1000:1001::/home/al:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nalice:x:1002:1002::/x:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nbob:x:1001:\nsudo:x:27:bob,al\nwheel:x:10:\n";

    #[test]
    fn nsswitch_is_read_as_glibc_reads_it_for_both_databases_at_once() {
        let both = |text: &str| {
            let a = files_first(text);
            // One reading for both gives what a reading for each gives.
            let one = |db| nsswitch_sources(text, db).is_some_and(|s| s.first() == Some(&"files"));
            assert_eq!(
                (a.passwd, a.group),
                (one("passwd"), one("group")),
                "{text:?}"
            );
            (a.passwd, a.group)
        };
        assert_eq!(both("passwd: files\ngroup: files systemd\n"), (true, true));
        assert_eq!(both("# c\n  passwd:\tfiles\ngroup files\n"), (true, true));
        assert_eq!(both("passwd: systemd files\ngroup: files\n"), (false, true));
        // A database named twice: refused for that one only.
        assert_eq!(
            both("passwd: files\ngroup: files\npasswd: ldap\n"),
            (false, true)
        );
        assert_eq!(
            both("passwd: files\ngroup: files\ngroup: files\n"),
            (true, false)
        );
        // Anything glibc may read otherwise, on any line: refused for both.
        for bad in [
            "hosts: files [NOTFOUND=return] dns",
            "hosts: files#x",
            "hosts: fil\u{e9}s",
        ] {
            assert_eq!(
                both(&format!("passwd: files\ngroup: files\n{bad}\n")),
                (false, false),
                "{bad}"
            );
        }
        assert_eq!(both("group: files\n"), (false, true));
        assert_eq!(both(""), (false, false));
        assert_eq!(
            nsswitch_sources("passwd:files  sss\t systemd\n", "passwd"),
            Some(vec!["files", "sss", "systemd"])
        );
    }

    #[test]
    fn first_line_by_name_then_first_line_by_uid() {
        let (_t, f) = files(NSS, PASSWD, GROUP);
        let acc = |n: &str, uid: u32, gid: u32, typed_gid: u32| {
            Answer::Found(FileAccount {
                canonical: n.into(),
                uid,
                gid,
                typed_gid,
            })
        };
        assert_eq!(f.account("alice"), acc("alice", 1000, 1000, 1000));
        // An alias resolves to the account's first line, gid included; its own line's gid is
        // kept for the groups of a session opened under it.
        assert_eq!(f.account("al"), acc("alice", 1000, 1000, 1001));
        assert_eq!(f.account("bob"), acc("bob", 1001, 1001, 1001));
        assert_eq!(f.account("carol"), Answer::AskNss);
        assert_eq!(f.account("Alice"), Answer::AskNss);
        assert_eq!(f.account(""), Answer::AskNss);
        assert_eq!(f.account("a:b"), Answer::AskNss);
    }

    #[test]
    fn membership_by_primary_gid_or_member_list() {
        let (_t, f) = files(NSS, PASSWD, GROUP);
        use Answer::{AskNss, Found};
        assert_eq!(
            f.membership("bob", 1001, &["sudo", "wheel", "bob", "ldapgroup"]),
            vec![Found(true), Found(false), Found(true), AskNss]
        );
        // Member lists name the canonical name; "al" is listed, "alice" is not.
        assert_eq!(f.membership("alice", 1000, &["sudo"]), vec![Found(false)]);
    }

    #[test]
    fn word_at_a_time_scans_match_a_byte_loop() {
        // Every length up to 40, colons and NULs at every offset (and bytes next to them that
        // a carry could confuse: 0x01, 0x39, 0x3b, 0x80, 0xba, 0xff).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = [
            b':', 0, 1, 0x39, 0x3b, 0x80, 0xba, 0xff, b'a', b'\n', 0x0b, 0x8a,
        ];
        for len in 0..40usize {
            for _ in 0..300 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let m = marks(&text);
                let colons: Vec<usize> = (0..len).filter(|&i| text[i] == b':').collect();
                assert_eq!(m.count, colons.len(), "{text:?}");
                let kept = colons.len().min(MAX_COLONS);
                assert_eq!(&m.colons[..kept], &colons[..kept], "{text:?}");
                assert_eq!(m.nul, text.contains(&0), "{text:?}");
                for b in [b'\n', b':', 0, 0xff] {
                    assert_eq!(
                        find_byte(&text, b),
                        text.iter().position(|&c| c == b),
                        "{b} in {text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn lines_across_reads_and_long_lines() {
        // 3,000 lines (over 100 KB: several reads), one of them with a 40 KB comment field
        // (longer than one read), and an alias of user 7 at the end.
        let mut passwd = String::new();
        for i in 0..3000u32 {
            let gecos = if i == 1500 {
                "g".repeat(40 << 10)
            } else {
                format!("user {i}")
            };
            passwd.push_str(&format!(
                "u{i}:x:{}:{}:{gecos}:/home/u{i}:/bin/sh\n",
                10_000 + i,
                20_000 + i
            ));
        }
        passwd.push_str("alias7:x:10007:1:::");
        let (_t, f) = files(NSS, &passwd, GROUP);
        for i in [0u32, 1, 399, 400, 401, 1499, 1500, 1501, 2999] {
            assert_eq!(
                f.account(&format!("u{i}")),
                Answer::Found(FileAccount {
                    canonical: format!("u{i}"),
                    uid: 10_000 + i,
                    gid: 20_000 + i,
                    typed_gid: 20_000 + i
                }),
                "u{i}"
            );
        }
        assert_eq!(
            f.account("alias7"),
            Answer::Found(FileAccount {
                canonical: "u7".into(),
                uid: 10_007,
                gid: 20_007,
                typed_gid: 1
            })
        );
        assert_eq!(f.account("u3000"), Answer::AskNss);
        // A line longer than any read here: the lookup is NSS's.
        let long = format!(
            "root:x:0:0:{}:/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "g".repeat(MAX_LINE)
        );
        let (_t, f) = files(NSS, &long, GROUP);
        assert_eq!(f.account("bob"), Answer::AskNss);
    }

    #[test]
    fn anything_unusual_goes_to_nss() {
        // Each oddity comes before bob's line; the lookup of bob goes to NSS.
        let odd_passwd = [
            "# comment\nbob:x:1:1::/:/bin/sh\n",
            " root:x:0:0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "root:x:0:0::/:/bin/sh\n\nbob:x:1:1::/:/bin/sh\n",
            "+bob::::::\nbob:x:1:1::/:/bin/sh\n",
            "-root::::::\nbob:x:1:1::/:/bin/sh\n",
            "root:x:0:0::/\nbob:x:1:1::/:/bin/sh\n",
            "root:x:0:0::/:/bin/sh:extra\nbob:x:1:1::/:/bin/sh\n",
            "root:x:0x:0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "root:x:4294967296:0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "root:x::0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "ro ot:x:0:0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "root:x:0\r:0::/:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "bob:x:1x:1::/:/bin/sh\n",
            "bob:x:1:-1::/:/bin/sh\n",
            // glibc ends a line at a NUL: this one has no uid to it, and is skipped.
            "bob:x\0:0:0::/root:/bin/sh\nbob:x:1:1::/:/bin/sh\n",
            "",
        ];
        for p in odd_passwd {
            let (_t, f) = files(NSS, p, GROUP);
            assert_eq!(f.account("bob"), Answer::AskNss, "{p:?}");
        }
        // What follows the name's line does not count (glibc stops there).
        let (_t, f) = files(NSS, "bob:x:1:1::/:/bin/sh\n# later\n\n+x\n", GROUP);
        assert!(matches!(f.account("bob"), Answer::Found(_)));
        assert_eq!(f.account("x"), Answer::AskNss);
        // An alias: the first line with its uid names the account.
        let (_t, f) = files(NSS, "bob:x:1:1::/:/bin/sh\nal:x:1:1::/:/bin/sh\n", GROUP);
        assert_eq!(
            f.account("al"),
            Answer::Found(FileAccount {
                canonical: "bob".into(),
                uid: 1,
                gid: 1,
                typed_gid: 1
            })
        );
        let odd_nsswitch = [
            "passwd: systemd files\n",
            "passwd: compat\n",
            "passwd: files [SUCCESS=continue] ldap\n",
            "passwd: files\npasswd: ldap\n",
            "group: files\n",
            "# passwd: files\n",
            "passwd: files\npasswd ldap\n",
            "passwd: files#local systemd\n",
            "passwd: files systemd # c [x\n",
            "passwd: files\nhosts: files [BOGUS=return]\n",
            "passwd: files\u{a0}systemd\n",
            "PASSWD: files\n",
        ];
        for n in odd_nsswitch {
            let (_t, f) = files(n, PASSWD, GROUP);
            assert_eq!(f.account("root"), Answer::AskNss, "{n:?}");
        }
        for g in [
            "root:x:0:\nsudo:x:27:bob, al\n",
            "sudo:x:27:bob,,al\n",
            "sudo:x:27\n",
            "# c\nsudo:x:27:bob\n",
            "sudo:x:27:bob,\n",
            "sudo:x\0:27:bob\nsudo:x:28:al\n",
        ] {
            let (_t, f) = files(NSS, PASSWD, g);
            assert_eq!(
                f.membership("bob", 1001, &["sudo"]),
                vec![Answer::AskNss],
                "{g:?}"
            );
        }
        let (_t, f) = files(
            "passwd: files\ngroup: files [SUCCESS=merge] systemd\n",
            PASSWD,
            GROUP,
        );
        assert_eq!(f.membership("bob", 1001, &["sudo"]), vec![Answer::AskNss]);
        // Missing files.
        let f = UserFiles::under(Path::new("/nonexistent"));
        assert_eq!(f.account("root"), Answer::AskNss);
        // Sources after `files`, comment lines, no colon: fine.
        let (_t, f) = files(
            "# comment\n  # another\npasswd   files sss ldap\ngroup: files sss\n",
            PASSWD,
            GROUP,
        );
        assert!(matches!(f.account("bob"), Answer::Found(_)));
    }
}
