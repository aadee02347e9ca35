//! What several test files of the `policy` crate share.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A fresh state directory (0700) inside a temporary directory that goes with the guard.
#[allow(dead_code)] // each test file uses its part
pub fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    (tmp, dir)
}

/// Runs `COMMAND NAME` (`userdel`, `groupdel`) when dropped: an account or group a test made
/// goes, whatever the test's outcome.
#[allow(dead_code)] // each test file uses its part
pub struct Gone(pub &'static str, pub String);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.0).arg(&self.1).output();
    }
}

/// xorshift64*: reproducible pseudo-random cases without a dependency.
#[allow(dead_code)] // each test file uses its part
pub struct Rng(pub u64);

#[allow(dead_code)] // each test file uses its part
impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A time up to the year 9999, as RFC 3339 allows.
    pub fn time(&mut self) -> u64 {
        self.below(253_402_300_800)
    }

    /// One of `xs`.
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// `text` damaged once: a piece of up to 8 characters cut, doubled, or replaced by or
    /// preceded with one of `inserts`.
    pub fn damage(&mut self, text: &str, inserts: &[&str]) -> String {
        let chars: Vec<char> = text.chars().collect();
        let at = self.below(chars.len() as u64 + 1) as usize;
        let end = (at + self.below(8) as usize).min(chars.len());
        let head: String = chars[..at].iter().collect();
        let mid: String = chars[at..end].iter().collect();
        let tail: String = chars[end..].iter().collect();
        match self.below(4) {
            0 => format!("{head}{tail}"),
            1 => format!("{head}{mid}{mid}{tail}"),
            2 => format!("{head}{}{mid}{tail}", self.pick(inserts)),
            _ => format!("{head}{}{tail}", self.pick(inserts)),
        }
    }
}
