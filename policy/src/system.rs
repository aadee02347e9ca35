//! Users and groups from the system's user database (NSS: `getpwnam_r`, `getpwuid_r`,
//! `getgrouplist`, `getgrgid_r`), never from the environment.
//!
//! **Identity is the account.** A name as typed (`PAM_USER`, a command-line argument) is only
//! a way to find an account: [`lookup`] returns the account of its uid under its canonical name,
//! the one `getpwuid(uid)` gives. A second passwd line with the same uid, a case variant that
//! SSSD or winbind accept, or `user@domain` all resolve to the same [`Account`], so the record,
//! the `[users.X]` rule, the groups, the throttle and the "verified" mark are those of the
//! account, never a fresh start for another spelling. (`getpwnam("alias")` answers with the
//! name "alias" itself: only the uid tells.)

use std::ffi::CString;

use nix::unistd::{Gid, Group, User, getgrouplist};

use crate::userfiles::{Answer, UserFiles};

/// A local account as the user database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The canonical login name: the one `getpwuid(uid)` returns.
    pub name: String,
    /// The name it was looked up by, when that differs from [`Account::name`] (an alias).
    /// Boxed: the daemon holds one `Account` per user of a listing, and aliases are rare.
    pub typed: Option<Box<Typed>>,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Names of all groups the user is in, primary and supplementary, sorted.
    pub groups: Vec<String>,
}

/// The other name an account was looked up by (a second passwd line with its uid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The name as typed.
    pub name: String,
    /// The primary gid of that name's own line.
    pub gid: u32,
    /// The groups a session opened under that name gets (its line's primary group, and the
    /// member lists that name it): all of them from [`lookup`], those the policy names from
    /// [`crate::login::policy_for`].
    pub groups: Vec<String>,
}

impl Typed {
    /// The alias `name`, whose own line has primary gid `gid`.
    pub fn new(name: &str, gid: u32) -> Box<Typed> {
        Box::new(Typed {
            name: name.to_owned(),
            gid,
            groups: Vec::new(),
        })
    }
}

impl Account {
    /// The typed name as an account of its own (its line's primary group), for its groups.
    pub fn as_typed(&self) -> Option<Account> {
        let t = self.typed.as_ref()?;
        Some(Account {
            name: t.name.clone(),
            typed: None,
            uid: self.uid,
            gid: t.gid,
            groups: Vec::new(),
        })
    }

    /// The groups of the typed name (empty for no alias).
    pub fn typed_groups(&self) -> &[String] {
        self.typed.as_ref().map_or(&[], |t| &t.groups)
    }
}

/// The groups of `a` and of `b` together, sorted, each once.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut all: Vec<String> = a.iter().chain(b).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// A failed lookup (not "no such user": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("user database lookup of {what} failed: {errno}")]
pub struct LookupError {
    what: String,
    errno: nix::errno::Errno,
}

/// Whether a `get*_r` error means "no such entry". POSIX says "not found" is success with no
/// result, but NSS modules answer with ENOENT, ESRCH, EBADF or EPERM as well (getpwnam(3),
/// NOTES); nss_wrapper does, for one. Anything else (EIO, ENOMEM, …) is a real failure.
fn is_not_found(errno: nix::errno::Errno) -> bool {
    use nix::errno::Errno;
    matches!(
        errno,
        Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM
    )
}

/// Looks up the account `name` names: its uid, its canonical name (that of `getpwuid`), and
/// the names of all the canonical account's groups. `Ok(None)` when no account has that name.
pub fn lookup(name: &str) -> Result<Option<Account>, LookupError> {
    lookup_in(&UserFiles::default(), name)
}

/// [`lookup`] with the user database files of `files` (e.g. [`UserFiles::nss_only`] for a
/// caller that has already read the files and knows they lack the name).
pub fn lookup_in(files: &UserFiles, name: &str) -> Result<Option<Account>, LookupError> {
    let Some(mut a) = lookup_account_in(files, name)? else {
        return Ok(None);
    };
    a.groups = groups_of(&a)?;
    if let Some(alias) = a.as_typed() {
        let groups = groups_of(&alias)?;
        if let Some(t) = a.typed.as_mut() {
            t.groups = groups;
        }
    }
    Ok(Some(a))
}

/// The names of all groups of `account` (primary and supplementary, sorted): `getgrouplist`
/// and `getgrgid_r`, through every NSS source.
pub fn groups_of(account: &Account) -> Result<Vec<String>, LookupError> {
    group_names(&account.name, Gid::from_raw(account.gid))
}

/// Like [`lookup`], without the groups ([`Account::groups`] is empty): for a login that no
/// group rule can affect (see [`groups_of`]). From the user database files of `files` (read
/// once when they answer for the name exactly as NSS would: [`crate::userfiles`]), else
/// through NSS.
pub fn lookup_account_in(files: &UserFiles, name: &str) -> Result<Option<Account>, LookupError> {
    if name.contains('\0') {
        return Ok(None);
    }
    if let Answer::Found(a) = files.account(name) {
        let alias = a.canonical != name;
        return Ok(Some(Account {
            typed: alias.then(|| Typed::new(name, a.typed_gid)),
            name: a.canonical,
            uid: a.uid,
            gid: a.gid,
            groups: Vec::new(),
        }));
    }
    let user = match User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(None),
        Err(errno) if is_not_found(errno) => return Ok(None),
        Err(errno) => {
            return Err(LookupError {
                what: format!("user {name:?}"),
                errno,
            });
        }
    };
    let typed_gid = user.gid.as_raw();
    // The canonical entry of this uid. If the database has none (a broken NSS setup), the
    // entry found by name is all there is.
    let canonical = match User::from_uid(user.uid) {
        Ok(Some(u)) => u,
        Ok(None) => user,
        Err(errno) if is_not_found(errno) => user,
        Err(errno) => {
            return Err(LookupError {
                what: format!("uid {}", user.uid),
                errno,
            });
        }
    };
    let alias = canonical.name != name;
    Ok(Some(Account {
        typed: alias.then(|| Typed::new(name, typed_gid)),
        name: canonical.name,
        uid: canonical.uid.as_raw(),
        gid: canonical.gid.as_raw(),
        groups: Vec::new(),
    }))
}

/// The account with this uid, under its canonical name.
pub fn lookup_uid(uid: u32) -> Result<Option<Account>, LookupError> {
    let user = match User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(None),
        Err(errno) if is_not_found(errno) => return Ok(None),
        Err(errno) => {
            return Err(LookupError {
                what: format!("uid {uid}"),
                errno,
            });
        }
    };
    let groups = group_names(&user.name, user.gid)?;
    Ok(Some(Account {
        typed: None,
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    }))
}

/// Of the groups `names`, those `account` is in: its primary group, or a group whose member
/// list names the account (`getgrnam_r` of each name). For a policy that names a few groups,
/// this asks the user database about those few instead of enumerating every group of every
/// NSS source as `getgrouplist` does ([`groups_of`]); membership is the same (a group's
/// members by name, and the primary group), sorted. Groups `/etc/group` answers for exactly
/// as NSS would ([`crate::userfiles`], through `files`) are read from it, in one read for all.
pub fn member_of_in(
    files: &UserFiles,
    account: &Account,
    names: &[&str],
) -> Result<Vec<String>, LookupError> {
    let mut out = Vec::new();
    let answers = files.membership(&account.name, account.gid, names);
    for (i, name) in names.iter().enumerate() {
        if name.contains('\0') {
            continue;
        }
        match answers.get(i) {
            Some(Answer::Found(true)) => {
                out.push((*name).to_owned());
                continue;
            }
            Some(Answer::Found(false)) => continue,
            Some(Answer::AskNss) | None => {}
        }
        match Group::from_name(name) {
            Ok(Some(g)) => {
                if g.gid.as_raw() == account.gid || g.mem.contains(&account.name) {
                    out.push(g.name);
                }
            }
            Ok(None) => {}
            Err(errno) if is_not_found(errno) => {}
            Err(errno) => {
                return Err(LookupError {
                    what: format!("group {name:?}"),
                    errno,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn group_names(user: &str, primary: Gid) -> Result<Vec<String>, LookupError> {
    let cname = CString::new(user).map_err(|_| LookupError {
        what: format!("groups of {user:?}"),
        errno: nix::errno::Errno::EINVAL,
    })?;
    let gids = getgrouplist(&cname, primary).map_err(|errno| LookupError {
        what: format!("groups of {user:?}"),
        errno,
    })?;
    let mut names = Vec::with_capacity(gids.len());
    for gid in gids {
        match Group::from_gid(gid) {
            Ok(Some(g)) => names.push(g.name),
            // A gid with no name cannot match a [groups.X] table; skip it.
            Ok(None) => {}
            Err(errno) if is_not_found(errno) => {}
            Err(errno) => {
                return Err(LookupError {
                    what: format!("gid {gid}"),
                    errno,
                });
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}
