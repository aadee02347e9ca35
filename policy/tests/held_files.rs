//! A login keeps the record and counters it read before the prompt open ([`Store::hold_files`])
//! and reads them again under the lock with a `statx` and a `pread`. Whatever happens to the
//! files while the prompt is open (another login, a reset, a replacement by rename, an edit in
//! place, a chmod, a removal), the check under the lock must see what a fresh open would see,
//! and the accepted step must land in the file the name leads to. Codes from `oathtool`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use twofold_policy::store::StateStore as _;

use common::state_dir;
use twofold_policy::login::{Attempt, Outcome};
use twofold_policy::record::{Counters, Enrollment, Record};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Store, StoreError, UserName, recovery};

const NOW: u64 = 1_800_000_000;

fn alice() -> UserName {
    UserName::parse("alice").unwrap()
}

fn oathtool(secret: &Secret, time: u64) -> String {
    let out = Command::new("oathtool")
        .arg("--totp")
        .arg(format!("--now=@{time}"))
        .arg("--base32")
        .arg(secret.to_base32().as_str())
        .output()
        .expect("oathtool must be installed (make test installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Enrolls alice with a fresh secret through a store of its own (another process, as far as
/// the login's store can tell).
fn enroll(dir: &Path) -> Secret {
    let secret = Secret::generate().unwrap();
    let store = Store::open(dir).unwrap();
    let lock = store.lock(&alice()).unwrap();
    let mut r = Record::new("alice");
    let codes = recovery::generate(2).unwrap();
    r.enrollment = Some(Enrollment::new(
        &secret,
        Params::default(),
        NOW - 100,
        codes.hashes,
    ));
    lock.write_record(&r).unwrap();
    secret
}

/// A login's store after what it reads before the prompt: the record, then the counters.
fn login_before_prompt(dir: &Path) -> Store {
    let mut store = Store::open(dir).unwrap();
    store.hold_files();
    assert!(store.read_record(&alice()).unwrap().is_some());
    store.read_counters_lenient(&alice()).unwrap();
    store
}

fn check(store: &Store, code: &str) -> Result<Outcome, StoreError> {
    check_at(store, code, NOW)
}

fn check_at(store: &Store, code: &str, at: u64) -> Result<Outcome, StoreError> {
    let a = Attempt {
        input: code,
        source: "local",
        from: "test",
        window: 1,
        at,
    };
    store.check_attempt(&alice(), &a).map(|c| c.outcome)
}

fn last_step(dir: &Path) -> Option<u64> {
    Store::open(dir)
        .unwrap()
        .read_counters(&alice())
        .unwrap()
        .last_steps
        .get(&1)
        .copied()
}

/// A first login (a step ago), which leaves counters behind: the next login holds that file.
fn first_login(dir: &Path, secret: &Secret) {
    let first = login_before_prompt(dir);
    assert_eq!(
        check_at(&first, &oathtool(secret, NOW - 90), NOW - 90).unwrap(),
        Outcome::Code
    );
}

/// Replaces alice's counters file by rename with `text`, as a hand-made tool would (no lock).
fn replace_counters(dir: &Path, text: &str) {
    let tmp = dir.join("alice.counters.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, dir.join("alice.counters")).unwrap();
}

#[test]
fn an_unchanged_state_is_checked_and_the_step_recorded() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    // Counters exist (a returning user), so the held counters file is the one written.
    let login = login_before_prompt(&dir);
    let code = oathtool(&secret, NOW - 60);
    assert_eq!(check_at(&login, &code, NOW - 60).unwrap(), Outcome::Code);
    let first = last_step(&dir).unwrap();
    drop(login);
    let login = login_before_prompt(&dir);
    let code = oathtool(&secret, NOW);
    assert_eq!(check(&login, &code).unwrap(), Outcome::Code);
    assert!(last_step(&dir).unwrap() > first);
    // And the same code again, in the same store, is a replay.
    assert_eq!(check(&login, &code).unwrap(), Outcome::Replayed);
}

#[test]
fn a_code_accepted_by_another_login_meanwhile_is_a_replay() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    let code = oathtool(&secret, NOW);
    // Two logins prompt at once, both having read the state before.
    let one = login_before_prompt(&dir);
    let two = login_before_prompt(&dir);
    assert_eq!(check(&one, &code).unwrap(), Outcome::Code);
    assert_eq!(check(&two, &code).unwrap(), Outcome::Replayed);
    // The same with a counters file that existed before both (written in place by the first).
    let code = oathtool(&secret, NOW + 30);
    let one = login_before_prompt(&dir);
    let two = login_before_prompt(&dir);
    let at = |s: &Store| {
        s.check_attempt(
            &alice(),
            &Attempt {
                input: &code,
                source: "local",
                from: "test",
                window: 1,
                at: NOW + 30,
            },
        )
        .unwrap()
        .outcome
    };
    assert_eq!(at(&two), Outcome::Code);
    assert_eq!(at(&one), Outcome::Replayed);
}

#[test]
fn a_record_replaced_meanwhile_is_read_again() {
    let (_t, dir) = state_dir();
    let old = enroll(&dir);
    let login = login_before_prompt(&dir);
    // An admin resets and the user enrolls again (the record is replaced by rename).
    let new = enroll(&dir);
    assert_eq!(
        check(&login, &oathtool(&old, NOW)).unwrap(),
        Outcome::Invalid
    );
    assert_eq!(check(&login, &oathtool(&new, NOW)).unwrap(), Outcome::Code);
}

#[test]
fn a_record_edited_in_place_meanwhile_is_read_again() {
    let (_t, dir) = state_dir();
    let old = enroll(&dir);
    let record = dir.join("alice.toml");
    let old_text = std::fs::read_to_string(&record).unwrap();
    // Another enrollment's text, written into the same inode (an editor writing in place).
    let (_t2, other_dir) = state_dir();
    let new = enroll(&other_dir);
    let new_text = std::fs::read_to_string(other_dir.join("alice.toml")).unwrap();
    let login = login_before_prompt(&dir);
    let ino = std::fs::metadata(&record).unwrap();
    std::fs::write(&record, &new_text).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&record).unwrap()),
        std::os::unix::fs::MetadataExt::ino(&ino)
    );
    assert_ne!(old_text, new_text);
    assert_eq!(
        check(&login, &oathtool(&old, NOW)).unwrap(),
        Outcome::Invalid
    );
    assert_eq!(check(&login, &oathtool(&new, NOW)).unwrap(), Outcome::Code);
}

#[test]
fn a_record_removed_meanwhile_is_not_enrolled() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    let login = login_before_prompt(&dir);
    std::fs::remove_file(dir.join("alice.toml")).unwrap();
    assert_eq!(
        check(&login, &oathtool(&secret, NOW)).unwrap(),
        Outcome::NotEnrolled
    );
}

#[test]
fn counters_replaced_by_rename_meanwhile_are_the_ones_read_and_written() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    first_login(&dir, &secret);
    let code = oathtool(&secret, NOW);
    let step = twofold_policy::totp::step_of(NOW, Params::default());
    let login = login_before_prompt(&dir);
    // Meanwhile the counters file is replaced by another one that has used this step already.
    replace_counters(&dir, &format!("version = 1\nlast_step = {step}\n"));
    assert_eq!(check(&login, &code).unwrap(), Outcome::Replayed);
    drop(login);
    // And replaced by an older one: the code is accepted, and its step is written to the file
    // the name leads to now, not to the replaced one the login had open.
    let login = login_before_prompt(&dir);
    replace_counters(&dir, &format!("version = 1\nlast_step = {}\n", step - 10));
    assert_eq!(check(&login, &code).unwrap(), Outcome::Code);
    assert_eq!(last_step(&dir), Some(step));
}

#[test]
fn a_file_made_unsafe_meanwhile_is_refused() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    let login = login_before_prompt(&dir);
    std::fs::set_permissions(
        dir.join("alice.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = check(&login, &oathtool(&secret, NOW)).unwrap_err();
    assert!(matches!(err, StoreError::Insecure { .. }), "{err}");
}

#[test]
fn a_record_swapped_for_a_symlink_meanwhile_is_refused() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    let login = login_before_prompt(&dir);
    let (_t2, other) = state_dir();
    let _ = enroll(&other);
    std::fs::remove_file(dir.join("alice.toml")).unwrap();
    std::os::unix::fs::symlink(other.join("alice.toml"), dir.join("alice.toml")).unwrap();
    let err = check(&login, &oathtool(&secret, NOW)).unwrap_err();
    assert!(matches!(err, StoreError::Insecure { .. }), "{err}");
}

/// A counters file replaced by rename, or removed, between the read under the lock and the
/// write (by hand: such a writer does not take the lock): the step goes to the name.
#[test]
fn counters_replaced_or_removed_after_the_locked_read_still_get_the_step() {
    for remove in [false, true] {
        let (_t, dir) = state_dir();
        let secret = enroll(&dir);
        first_login(&dir, &secret);
        let step = twofold_policy::totp::step_of(NOW, Params::default());
        let login = login_before_prompt(&dir);
        {
            let lock = login.lock(&alice()).unwrap();
            let mut state = lock.read().unwrap();
            state.counters.last_steps.insert(1, step);
            let path = dir.join("alice.counters");
            if remove {
                std::fs::remove_file(&path).unwrap();
            } else {
                replace_counters(&dir, "version = 1\nlast_step = 2\n");
            }
            lock.write_counters(&state.counters).unwrap();
        }
        assert_eq!(last_step(&dir), Some(step), "remove={remove}");
        let later = login_before_prompt(&dir);
        assert_eq!(
            check(&later, &oathtool(&secret, NOW)).unwrap(),
            Outcome::Replayed,
            "remove={remove}"
        );
    }
}

/// Eight logins at once (each its own store, as separate processes), one code: exactly one is
/// accepted, round after round.
#[test]
fn concurrent_logins_with_one_code_accept_exactly_one() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    for round in 0..20u64 {
        let at = NOW + 30 * round;
        let code = oathtool(&secret, at);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let logins: Vec<_> = (0..8)
            .map(|_| {
                let (dir, code, barrier) = (dir.clone(), code.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let login = login_before_prompt(&dir);
                    barrier.wait();
                    check_at(&login, &code, at).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<Outcome> = logins.into_iter().map(|h| h.join().unwrap()).collect();
        let accepted = outcomes.iter().filter(|o| **o == Outcome::Code).count();
        assert_eq!(accepted, 1, "round {round}: {outcomes:?}");
    }
}

/// The record swapped for a hard link to another user's record (same owner and mode) during
/// the prompt: another inode, read afresh, refused as another user's.
#[test]
fn a_record_swapped_for_another_users_hard_link_is_refused() {
    let (_t, dir) = state_dir();
    let _ = enroll(&dir);
    let bob_secret = Secret::generate().unwrap();
    {
        let store = Store::open(&dir).unwrap();
        let bob = UserName::parse("bob").unwrap();
        let lock = store.lock(&bob).unwrap();
        let mut r = Record::new("bob");
        r.enrollment = Some(Enrollment::new(&bob_secret, Params::default(), NOW, vec![]));
        lock.write_record(&r).unwrap();
    }
    let login = login_before_prompt(&dir);
    std::fs::remove_file(dir.join("alice.toml")).unwrap();
    std::fs::hard_link(dir.join("bob.toml"), dir.join("alice.toml")).unwrap();
    let r = check(&login, &oathtool(&bob_secret, NOW));
    assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{r:?}");
}

/// A second lock of the same store that writes without reading first writes by name: what
/// the first lock found current is not taken for current under the second.
#[test]
fn a_second_lock_that_did_not_read_writes_by_name() {
    let (_t, dir) = state_dir();
    let secret = enroll(&dir);
    first_login(&dir, &secret);
    let login = login_before_prompt(&dir);
    {
        let lock = login.lock(&alice()).unwrap();
        let _ = lock.read().unwrap();
    }
    replace_counters(&dir, "version = 1\nlast_step = 2\n");
    {
        let lock = login.lock(&alice()).unwrap();
        lock.write_counters(&Counters {
            last_steps: std::collections::BTreeMap::from([(1, 77)]),
            ..Counters::default()
        })
        .unwrap();
    }
    assert_eq!(last_step(&dir), Some(77));
}

/// Attacker review 2: an answer of 8 digits is an imported scratch code's shape only for an
/// enrollment that has one. For everyone else (6-digit authenticators, generated recovery codes)
/// it is no code, as before the import: not counted as a wrong code (a screen locker sending an
/// 8-digit numeric password to every prompt would otherwise throttle the user's own logins).
#[test]
fn an_eight_digit_answer_is_no_code_without_a_scratch_code_or_an_eight_digit_authenticator() {
    let (_t, dir) = state_dir();
    enroll(&dir);
    let login = login_before_prompt(&dir);
    assert_eq!(check(&login, "12345678").unwrap(), Outcome::NotACode);
    assert_eq!(check(&login, "1234-5678").unwrap(), Outcome::NotACode);
}
