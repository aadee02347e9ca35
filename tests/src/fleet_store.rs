//! The store of a fleet's host over the test directory ([`Slapd`]): a temporary state
//! directory, a password file for the directory's service account, a policy with
//! `[store] backend = "ldap"`, and the store [`open_backend`] makes of them; with the helpers
//! the tests of that store share (enroll a user, a code from oathtool, one attempt, one
//! check). Fallible helpers return the error for the test to unwrap.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use twofold_policy::login::{Attempt, Outcome};
use twofold_policy::record::{Enrollment, Override, Record};
use twofold_policy::store::{StateStore, Store, StoreError, open_backend};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Mode, Policy, UserName};

use crate::slapd::Slapd;

/// Whatever a helper failed on.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A policy whose store is the directory: `[store] backend = "ldap"` and its `[store.ldap]`.
#[derive(Clone, Debug)]
pub struct LdapPolicy {
    /// The lines before `[store]` (the policy's mode), each ending in a newline.
    pub head: String,
    /// The directory's URIs: one is written as a string, more as a list.
    pub uris: Vec<String>,
    /// `base`: twofold's entries.
    pub base: String,
    /// `bind_dn`: the service account.
    pub bind_dn: String,
    /// `bind_password_file`.
    pub password_file: PathBuf,
    /// `timeout`, e.g. `2s`.
    pub timeout: String,
    /// What follows `timeout` (more of `[store.ldap]`, or `[store.offline]`).
    pub extra: String,
}

impl LdapPolicy {
    /// `mode = "optional"`, the directory of `slapd` over its ldapi socket, bound as its
    /// service account with the password in `password_file`, a timeout of 2s, nothing more.
    pub fn of(slapd: &Slapd, password_file: &Path) -> LdapPolicy {
        LdapPolicy {
            head: "mode = \"optional\"\n".into(),
            uris: vec![slapd.ldapi_url()],
            base: slapd.twofold_base(),
            bind_dn: slapd.service_dn(),
            password_file: password_file.to_path_buf(),
            timeout: "2s".into(),
            extra: String::new(),
        }
    }

    /// The policy file's text: `uri` on the fifth line of a one-line head, `base` on the sixth.
    /// It ends in a newline.
    pub fn text(&self) -> String {
        let uri = match self.uris.as_slice() {
            [one] => format!("{one:?}"),
            more => format!(
                "[{}]",
                more.iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut text = format!(
            "{head}[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = {uri}\nbase = \"{base}\"\n\
             bind_dn = \"{dn}\"\nbind_password_file = \"{file}\"\ntimeout = \"{timeout}\"\n\
             {extra}",
            head = self.head,
            base = self.base,
            dn = self.bind_dn,
            file = self.password_file.display(),
            timeout = self.timeout,
            extra = self.extra,
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// Sets the permission bits of `p`.
pub fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Writes `password` as it is (a newline only if it ends in one) to `dir/ldap.secret`, mode
/// 0600 as the store requires: the file's path.
pub fn password_file(dir: &Path, password: &str) -> std::io::Result<PathBuf> {
    let file = dir.join("ldap.secret");
    std::fs::write(&file, password)?;
    set_mode(&file, 0o600)?;
    Ok(file)
}

/// One host: its state directory (`state`, with the password file and `policy.toml` beside
/// it) and its store over the shared directory.
pub struct Host {
    /// Holds the state directory, the password file and the policy.
    pub dir: tempfile::TempDir,
    /// The store `open_backend` made of the policy.
    pub store: Arc<dyn StateStore>,
}

/// A host of the directory of `slapd`, its policy [`LdapPolicy::of`] as `edit` leaves it.
pub fn host_with(slapd: &Slapd, edit: impl FnOnce(&mut LdapPolicy)) -> Result<Host, Error> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let secret = password_file(dir.path(), &format!("{}\n", slapd.service_password()))?;
    let mut policy = LdapPolicy::of(slapd, &secret);
    edit(&mut policy);
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy.text())?;
    let policy = Policy::load(&policy_file, None)?;
    let local = Arc::new(Store::open_or_create(&state)?);
    let store = open_backend(local, &policy)?;
    if store.backend() != "ldap" {
        return Err(format!("the store is {:?}, not the directory", store.backend()).into());
    }
    Ok(Host { dir, store })
}

/// A host of the directory of `slapd` with `extra` at the end of its policy.
pub fn host(slapd: &Slapd, extra: &str) -> Result<Host, Error> {
    host_with(slapd, |p| p.extra = extra.to_owned())
}

/// `name` as a user name.
pub fn user(name: &str) -> Result<UserName, Error> {
    Ok(UserName::parse(name)?)
}

/// Writes `change` of `name`'s record (made if there is none) through `store`.
fn update_record(
    store: &dyn StateStore,
    name: &str,
    change: &mut dyn FnMut(&mut Record),
) -> Result<twofold_policy::store::UserState, Error> {
    store
        .update(&user(name)?, &mut |state| {
            change(state.record.get_or_insert_with(|| Record::new(name)));
            Ok(())
        })?
        .ok_or_else(|| format!("the update of {name} was abandoned").into())
}

/// Enrolls `name` through `store` with a fresh secret and `codes` recovery codes: the secret,
/// the codes in clear and the token's id.
pub fn enroll_token(
    store: &dyn StateStore,
    name: &str,
    codes: u32,
) -> Result<(Secret, Vec<String>, u32), Error> {
    let secret = Secret::generate()?;
    let recovery = twofold_policy::recovery::generate(codes)?;
    let now = twofold_policy::time::now();
    let e = Enrollment::new(&secret, Params::default(), now, recovery.hashes.clone());
    let state = update_record(store, name, &mut |r| r.enrollment = Some(e.clone()))?;
    let id = state
        .record
        .and_then(|r| r.enrollment)
        .and_then(|e| e.authenticators.first().map(|a| a.id))
        .ok_or("the enrollment has no authenticator")?;
    let codes = recovery.codes.iter().map(|c| c.to_string()).collect();
    Ok((secret, codes, id))
}

/// Enrolls `name` through `store` with a fresh secret and `codes` recovery codes: the secret
/// and the codes in clear.
pub fn enroll(
    store: &dyn StateStore,
    name: &str,
    codes: u32,
) -> Result<(Secret, Vec<String>), Error> {
    let (secret, codes, _) = enroll_token(store, name, codes)?;
    Ok((secret, codes))
}

/// Sets an admin's override of `name` to `mode` through `store` (by root, at a fixed time).
pub fn set_override(store: &dyn StateStore, name: &str, mode: Mode) -> Result<(), Error> {
    update_record(store, name, &mut |r| {
        r.admin_override = Some(Override {
            mode,
            by: "root".into(),
            at: 1_700_000_000,
        });
    })?;
    Ok(())
}

/// The code of `secret` `offset` steps from now, from oathtool.
pub fn code(secret: &Secret, offset: i64) -> Result<String, Error> {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N"])
        .arg(format!("now {:+} seconds", offset * 30))
        .arg(secret.to_base32().as_str())
        .output()?;
    if !out.status.success() {
        return Err(format!("oathtool: {out:?}").into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// An attempt with `input` from `source`, now, in a window of one step.
pub fn attempt<'a>(input: &'a str, source: &'a str) -> Attempt<'a> {
    Attempt {
        input,
        source,
        from: source,
        window: 1,
        at: twofold_policy::time::now(),
    }
}

/// The outcome of [`attempt`] for `name` through `store`.
pub fn check(
    store: &dyn StateStore,
    name: &str,
    input: &str,
    source: &str,
) -> Result<Outcome, Error> {
    Ok(store
        .check_attempt(&user(name)?, &attempt(input, source))?
        .outcome)
}

/// `input` typed for `name` `n` times at once, the `i`th time through the store of
/// `hosts[i % hosts.len()]` from `source(i)`: how many were accepted. The directory being busy
/// or contended counts as a refusal when `busy_refuses`; any other error of the store is
/// returned.
pub fn accepted_at_once(
    hosts: &[Host],
    name: &str,
    input: &str,
    n: usize,
    source: impl Fn(usize) -> String + Sync,
    busy_refuses: bool,
) -> Result<usize, Error> {
    let name = user(name)?;
    let results: Vec<Result<bool, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .zip(hosts.iter().cycle())
            .map(|(i, host)| {
                let (store, name, source) = (host.store.clone(), &name, &source);
                s.spawn(move || {
                    let source = source(i);
                    match store.check_attempt(name, &attempt(input, &source)) {
                        Ok(checked) => Ok(checked.outcome.accepted()),
                        Err(StoreError::Busy { .. } | StoreError::Contended { .. })
                            if busy_refuses =>
                        {
                            Ok(false)
                        }
                        Err(e) => Err(e),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut accepted = 0;
    for r in results {
        if r? {
            accepted += 1;
        }
    }
    Ok(accepted)
}

/// The error a check of [`attempt`] for `name` through `store` ends in; an error of its own
/// when the check answers.
pub fn check_error(
    store: &dyn StateStore,
    name: &str,
    input: &str,
    source: &str,
) -> Result<StoreError, Error> {
    match store.check_attempt(&user(name)?, &attempt(input, source)) {
        Ok(checked) => Err(format!("the check of {name} answered {:?}", checked.outcome).into()),
        Err(e) => Ok(e),
    }
}

/// The entries of `name`'s account in the directory of `slapd` (the account and its tokens)
/// that match `filter`, with their attributes `attrs`, read as its admin: LDIF.
pub fn account_ldif(
    slapd: &Slapd,
    name: &str,
    filter: &str,
    attrs: &[&str],
) -> std::io::Result<String> {
    let dn = format!("uid={name},ou=accounts,{}", slapd.twofold_base());
    slapd.ldapsearch(&dn, filter, attrs)
}

/// A private slapd with the default options when running as root; `None` (having said why
/// the test does nothing) otherwise.
pub fn slapd_or_skip() -> std::io::Result<Option<Slapd>> {
    if !crate::root_or_skip() {
        return Ok(None);
    }
    Slapd::start(&crate::slapd::Options::default()).map(Some)
}
