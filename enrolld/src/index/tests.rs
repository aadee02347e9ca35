//! Tests of the index.

use super::userdb::files_first;
use super::*;

#[test]
#[allow(clippy::unwrap_used)] // a panic here is a failed test
fn drop_ins_added_changed_or_removed_are_seen() {
    let t = tempfile::tempdir().unwrap();
    let main = t.path().join("policy.toml");
    std::fs::write(&main, "mode = \"optional\"\n").unwrap();
    let cache = PolicyCache::default();
    let mode = |cache: &PolicyCache| cache.load(&main).unwrap().mode.value;
    assert_eq!(mode(&cache), twofold_policy::Mode::Optional);
    // The directory appears with a drop-in; another is added; one is edited in place
    // (the directory's identity stays: the file's own is what tells); one is removed.
    let d = t.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("50-a.toml"), "mode = \"required\"\n").unwrap();
    assert_eq!(mode(&cache), twofold_policy::Mode::Required);
    // Old enough to be trusted: the listing and the policy are kept from here on, until
    // an identity changes.
    std::thread::sleep(Duration::from_nanos(RACY_NS as u64 + 200_000_000));
    assert_eq!(mode(&cache), twofold_policy::Mode::Required);
    assert!(cache.dropins.lock().unwrap().is_some());
    std::fs::write(d.join("60-b.toml"), "mode = \"disabled\"\n").unwrap();
    assert_eq!(mode(&cache), twofold_policy::Mode::Disabled);
    std::fs::write(d.join("60-b.toml"), "mode = \"optional\"\n").unwrap();
    assert_eq!(mode(&cache), twofold_policy::Mode::Optional);
    std::fs::remove_file(d.join("60-b.toml")).unwrap();
    assert_eq!(mode(&cache), twofold_policy::Mode::Required);
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(mode(&cache), twofold_policy::Mode::Optional);
}

#[test]
fn nsswitch_files_first() {
    assert!(files_first(
        "passwd: files systemd\ngroup: files\n",
        "passwd"
    ));
    assert!(files_first("passwd:   files\n", "passwd"));
    assert!(!files_first("passwd: sss files\n", "passwd"));
    assert!(!files_first("passwd: files sss\n", "passwd"));
    assert!(!files_first("passwd: compat\n", "passwd"));
    assert!(!files_first("# passwd: files\n", "passwd"));
    // An action, or a `#` glibc does not take for a comment: NSS answers.
    assert!(!files_first(
        "passwd: files [NOTFOUND=return] systemd\n",
        "passwd"
    ));
    assert!(!files_first("passwd: files systemd # x\n", "passwd"));
    assert!(!files_first("passwd: files\npasswd systemd\n", "passwd"));
    assert!(!files_first("group: files\n", "passwd"));
}

#[test]
fn parses_aliases_groups_and_the_uid_range() {
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
    w(
        "passwd",
        "root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/h:/bin/sh\nann2:x:1000:5::/h:/bin/sh\nbad line\nsys:x:999:999::/:/bin/false\nann:x:7:7::/:/bin/sh\n",
    );
    w(
        "group",
        "root:x:0:\nann:x:1000:\nwheel:x:10:ann,bob\nstaff:x:50: ann2 \nwheel2:x:10:\nops:x:60:ann2\nfive:x:5:\n",
    );
    w(
        "nsswitch.conf",
        "passwd: files systemd\ngroup: files systemd\n",
    );
    w("login.defs", "UID_MIN 1000\nUID_MAX 2000\n");
    let db = UserDb::load(&Etc::under(dir.path()));
    assert!(db.usable());
    assert_eq!(db.local().collect::<Vec<_>>(), ["ann", "ann2"]);
    let a = db.account("ann2").unwrap();
    assert_eq!(a.name, "ann");
    assert_eq!(a.typed.as_ref().map(|t| t.name.as_str()), Some("ann2"));
    assert_eq!((a.uid, a.gid), (1000, 1000));
    assert_eq!(a.groups, ["ann", "wheel"]);
    assert_eq!(db.account_of_uid(1000).unwrap(), db.account("ann").unwrap());
    assert!(db.account("nobody").is_none());
    assert_eq!(db.groups_of("bob", 4242), ["wheel"]);
    // The groups of ann's other name: its line's primary group (5) and the lists naming it
    // (this reader trims the blanks around " ann2 ", which glibc would not: one more
    // group here only makes the daemon stricter).
    assert_eq!(db.alias_groups(1000), ["five", "ops", "staff"]);
    assert!(db.alias_groups(0).is_empty());
    w("nsswitch.conf", "passwd: sss files\ngroup: files\n");
    assert!(!UserDb::load(&Etc::under(dir.path())).usable());
}

#[test]
fn racy_entries_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passwd"), "a:x:1000:1000::/:/bin/sh\n").unwrap();
    let db = UserDb::load(&Etc::under(dir.path()));
    // Just written: too recent to trust.
    assert!(!db.valid(&Etc::under(dir.path())));
}
