//! `/etc/passwd` and `/etc/group` parsed once ([`UserDb`]), and where they are ([`Etc`]).

use std::path::{Path, PathBuf};

use super::{FileId, now_ns, racy};
use twofold_policy::system;

/// Where the user database files are (the root of the file system, except in unit tests).
#[derive(Debug, Clone)]
pub struct Etc {
    passwd: PathBuf,
    group: PathBuf,
    nsswitch: PathBuf,
    login_defs: PathBuf,
}

impl Default for Etc {
    fn default() -> Etc {
        Etc::under(Path::new("/etc"))
    }
}

impl Etc {
    /// `passwd`, `group`, `nsswitch.conf` and `login.defs` in `dir`.
    pub fn under(dir: &Path) -> Etc {
        Etc {
            passwd: dir.join("passwd"),
            group: dir.join("group"),
            nsswitch: dir.join("nsswitch.conf"),
            login_defs: dir.join("login.defs"),
        }
    }

    /// The files: `passwd`, `group`, `nsswitch.conf`, `login.defs`.
    pub fn files(&self) -> [&Path; 4] {
        [&self.passwd, &self.group, &self.nsswitch, &self.login_defs].map(PathBuf::as_path)
    }

    fn ids(&self) -> [Option<FileId>; 4] {
        [&self.passwd, &self.group, &self.nsswitch, &self.login_defs]
            .map(|p| FileId::stat(p).ok().flatten())
    }

    /// The identities of the files an account lookup depends on (not `login.defs`, which
    /// only says which accounts a listing shows).
    fn account_ids(&self) -> [Option<FileId>; 3] {
        [&self.passwd, &self.group, &self.nsswitch].map(|p| FileId::stat(p).ok().flatten())
    }
}

/// A name in [`UserDb`]'s text: start and length.
#[derive(Debug, Clone, Copy)]
struct Span(u32, u32);

/// `/etc/passwd` and `/etc/group`, parsed once (see the module's documentation), compact:
/// every name in one string, the maps as sorted vectors.
#[derive(Debug, Default)]
pub struct UserDb {
    ids: [Option<FileId>; 4],
    pub(super) racy: bool,
    /// Whether `nsswitch.conf` makes the files authoritative for the names they hold.
    usable: bool,
    text: String,
    /// (name, uid, primary gid) of every passwd name (aliases included; the first line of a
    /// name counts), by name.
    users: Vec<(Span, u32, u32)>,
    /// (uid, the first passwd name with it, its gid): what `getpwuid` answers from the files.
    canonical: Vec<(u32, Span, u32)>,
    /// (gid, the first group name with it), by gid.
    group_names: Vec<(u32, Span)>,
    /// (member, gid) of every group's member list, by member.
    members: Vec<(Span, u32)>,
    /// passwd names with a uid in login.defs' `UID_MIN..=UID_MAX`, in file order.
    local: Vec<Span>,
}

/// Whether the `db:` line of nsswitch.conf (`text`) asks `files` first, and only `files` and
/// `systemd` (Debian's default), read as glibc reads the file
/// ([`twofold_policy::userfiles::nsswitch_sources`]: anything glibc could read otherwise
/// refuses).
pub(super) fn files_first(text: &str, db: &str) -> bool {
    twofold_policy::userfiles::nsswitch_sources(text, db).is_some_and(|sources| {
        sources.first() == Some(&"files")
            && sources.iter().all(|s| matches!(*s, "files" | "systemd"))
    })
}

/// UID_MIN and UID_MAX of login.defs (`text`), Debian's defaults 1000 and 60000.
pub fn uid_range(text: &str) -> (u32, u32) {
    let get = |key: &str, default: u32| {
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(key)).then(|| it.next()).flatten()
            })
            .filter_map(|v| v.parse().ok())
            .next_back()
            .unwrap_or(default)
    };
    (get("UID_MIN", 1000), get("UID_MAX", 60000))
}

impl UserDb {
    fn name(&self, s: Span) -> &str {
        let (start, len) = (s.0 as usize, s.1 as usize);
        self.text.get(start..start + len).unwrap_or_default()
    }

    fn add(&mut self, name: &str) -> Span {
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.text.push_str(name);
        Span(start, u32::try_from(name.len()).unwrap_or(0))
    }

    /// Reads the files of `etc`. A file that cannot be read makes the database unusable
    /// (every lookup goes to NSS), never an error.
    pub fn load(etc: &Etc) -> UserDb {
        let read_at = now_ns();
        let ids = etc.ids();
        let racy = ids.iter().any(|id| racy(id, read_at));
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let mut db = UserDb {
            ids,
            racy,
            ..UserDb::default()
        };
        let (min, max) = uid_range(&read(&etc.login_defs).unwrap_or_default());
        let (Some(passwd), Some(group)) = (read(&etc.passwd), read(&etc.group)) else {
            return db;
        };
        for line in passwd.lines() {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(uid), Some(gid)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if name.is_empty() || name.starts_with(['+', '-']) {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
                continue;
            };
            let span = db.add(name);
            db.users.push((span, uid, gid));
            db.canonical.push((uid, span, gid));
            if (min..=max).contains(&uid) {
                db.local.push(span);
            }
        }
        for line in group.lines() {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(gid), Some(mem)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if name.is_empty() || name.starts_with(['+', '-']) {
                continue;
            }
            let Ok(gid) = gid.parse::<u32>() else {
                continue;
            };
            let span = db.add(name);
            db.group_names.push((gid, span));
            for m in mem.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let span = db.add(m);
                db.members.push((span, gid));
            }
        }
        // Sorted, the first line of each key kept (stable sorts).
        let text = std::mem::take(&mut db.text);
        let name = |s: &Span| {
            text.get(s.0 as usize..(s.0 + s.1) as usize)
                .unwrap_or_default()
        };
        db.users.sort_by(|a, b| name(&a.0).cmp(name(&b.0)));
        db.users.dedup_by(|a, b| name(&a.0) == name(&b.0));
        db.canonical.sort_by_key(|c| c.0);
        db.canonical.dedup_by_key(|c| c.0);
        db.group_names.sort_by_key(|g| g.0);
        db.group_names.dedup_by_key(|g| g.0);
        db.members.sort_by(|a, b| name(&a.0).cmp(name(&b.0)));
        db.text = text;
        db.text.shrink_to_fit();
        db.local.shrink_to_fit();
        db.users.shrink_to_fit();
        db.canonical.shrink_to_fit();
        db.group_names.shrink_to_fit();
        db.members.shrink_to_fit();
        let nsswitch = read(&etc.nsswitch).unwrap_or_default();
        db.usable = files_first(&nsswitch, "passwd") && files_first(&nsswitch, "group");
        db
    }

    /// Whether the files are still what was read (and not too recent to trust).
    pub(super) fn valid(&self, etc: &Etc) -> bool {
        !self.racy && etc.ids() == self.ids
    }

    /// Whether what account lookups use is still what was read: [`UserDb::valid`] without
    /// `login.defs`.
    pub(super) fn valid_for_accounts(&self, etc: &Etc) -> bool {
        !self.racy && self.ids.get(..3) == Some(&etc.account_ids()[..])
    }

    /// Whether the files answer for the names they hold: `nsswitch.conf` asks `files` first
    /// for `passwd` and `group`, and nothing but `files` and `systemd`.
    pub fn usable(&self) -> bool {
        self.usable
    }

    /// Local accounts: passwd names with a uid in login.defs' range, in file order.
    pub fn local(&self) -> impl Iterator<Item = &str> {
        self.local.iter().map(|s| self.name(*s))
    }

    fn canonical_of(&self, uid: u32) -> Option<(&str, u32)> {
        let i = self.canonical.binary_search_by_key(&uid, |c| c.0).ok()?;
        let &(_, span, gid) = self.canonical.get(i)?;
        Some((self.name(span), gid))
    }

    /// The (canonical name, uid, gid) of the account `name` names in the files.
    pub fn find(&self, name: &str) -> Option<(&str, u32, u32)> {
        let i = self
            .users
            .binary_search_by(|u| self.name(u.0).cmp(name))
            .ok()?;
        let &(_, uid, _) = self.users.get(i)?;
        // The canonical line's gid: that is the account's (getpwuid's) primary group.
        let (canonical, gid) = self.canonical_of(uid)?;
        Some((canonical, uid, gid))
    }

    /// The groups that sessions opened under the other names of `uid` get (every passwd
    /// line with that uid but the canonical one: its primary group and the member lists
    /// naming it), for a decision that an alias's session must not escape. Files only:
    /// NSS cannot list the names of a uid.
    pub fn alias_groups(&self, uid: u32) -> Vec<String> {
        let canonical = self.canonical_of(uid).map(|(n, _)| n);
        let mut out: Vec<String> = self
            .users
            .iter()
            .filter(|u| u.1 == uid && Some(self.name(u.0)) != canonical)
            .flat_map(|u| self.groups_of(self.name(u.0), u.2))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The account `name` names in the files, with its groups, like [`system::lookup`]
    /// (the daemon decides by the account's groups: an alias's own are not filled in).
    pub fn account(&self, name: &str) -> Option<system::Account> {
        let (canonical, uid, gid) = self.find(name)?;
        let typed_gid = self
            .users
            .binary_search_by(|u| self.name(u.0).cmp(name))
            .ok()
            .and_then(|i| self.users.get(i))
            .map_or(gid, |u| u.2);
        Some(system::Account {
            name: canonical.to_owned(),
            typed: (canonical != name).then(|| system::Typed::new(name, typed_gid)),
            uid,
            gid,
            groups: self.groups_of(canonical, gid),
        })
    }

    /// The account of `uid` in the files, with its groups, like [`system::lookup_uid`].
    pub fn account_of_uid(&self, uid: u32) -> Option<system::Account> {
        let (canonical, gid) = self.canonical_of(uid)?;
        Some(system::Account {
            name: canonical.to_owned(),
            typed: None,
            uid,
            gid,
            groups: self.groups_of(canonical, gid),
        })
    }

    fn group_name(&self, gid: u32) -> Option<&str> {
        let i = self.group_names.binary_search_by_key(&gid, |g| g.0).ok()?;
        self.group_names.get(i).map(|g| self.name(g.1))
    }

    /// The names of the groups of `user` (primary `gid` and every group listing them), sorted,
    /// like `getgrouplist` + `getgrgid` over the files.
    pub fn groups_of(&self, user: &str, gid: u32) -> Vec<String> {
        let start = self.members.partition_point(|m| self.name(m.0) < user);
        let listed = self
            .members
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|m| self.name(m.0) == user)
            .map(|m| m.1);
        let mut out: Vec<String> = std::iter::once(gid)
            .chain(listed)
            .filter_map(|g| self.group_name(g).map(str::to_owned))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
