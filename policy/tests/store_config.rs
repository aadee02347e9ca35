//! The `[store]` section (issue #23): the model a policy gives, every mistake refused with its
//! file:line:col (each key alone, and the rules between keys on the effective values of all
//! files), drop-ins overriding key by key, and the warning about `[store.offline]` with files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use twofold_policy::Policy;
use twofold_policy::config::store::{Backend, Bind, LdapConfig, OfflineConfig};
use twofold_policy::duration::PolicyDuration;

/// The example of the policy reference (README), with every key.
const EXAMPLE: &str = r#"mode = "optional"

[store]
backend = "ldap"

[store.ldap]
uri = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org:6360"]
base = "ou=twofold,dc=example,dc=org"
bind_dn = "cn=twofold,ou=services,dc=example,dc=org"
bind_password_file = "/etc/twofold/ldap.secret"
starttls = false
ca_file = "/etc/ssl/certs/ldap-ca.pem"
timeout = "3s"
link_oath_users = true
user_base = "ou=people,dc=example,dc=org"

[store.offline]
enabled = true
max_age = "3d"
"#;

fn parse(text: &str) -> Result<Policy, String> {
    Policy::parse_one(Path::new("p.toml"), text).map_err(|e| e.to_string())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A main file and its drop-ins (name, text) in a fresh directory: the main file's path.
fn files(main: &str, dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("policy.toml");
    write(&path, main);
    let d = tmp.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    for (name, text) in dropins {
        write(&d.join(name), text);
    }
    (tmp, path)
}

#[test]
fn without_a_store_section_the_records_stay_in_files() {
    let p = parse("mode = \"required\"\n").unwrap();
    assert_eq!(p.store.backend, Backend::Files);
    assert_eq!(p.store.ldap, None);
    assert_eq!(
        p.store.offline,
        OfflineConfig {
            enabled: false,
            max_age: PolicyDuration(3 * 86_400)
        }
    );
    assert!(p.store.sources.is_empty());
    assert!(p.store.warnings().is_empty());
    assert_eq!(p.store, Policy::default().store);
}

#[test]
fn the_example_gives_the_model() {
    let p = parse(EXAMPLE).unwrap();
    assert_eq!(p.store.backend, Backend::Ldap);
    assert_eq!(
        p.store.ldap,
        Some(LdapConfig {
            uris: vec![
                "ldaps://ldap1.example.org".into(),
                "ldaps://ldap2.example.org:6360".into()
            ],
            base: "ou=twofold,dc=example,dc=org".into(),
            bind: Bind::Simple {
                dn: "cn=twofold,ou=services,dc=example,dc=org".into(),
                password_file: "/etc/twofold/ldap.secret".into()
            },
            starttls: false,
            ca_file: Some("/etc/ssl/certs/ldap-ca.pem".into()),
            timeout: Duration::from_secs(3),
            link_oath_users: true,
            user_base: Some("ou=people,dc=example,dc=org".into()),
        })
    );
    assert_eq!(
        p.store.offline,
        OfflineConfig {
            enabled: true,
            max_age: PolicyDuration(3 * 86_400)
        }
    );
    // Where each key was set: file, line and column of its value (of the header for a table).
    let at = |k: &str| p.store.sources[k].to_string();
    assert_eq!(at("backend"), "p.toml:4:11");
    assert_eq!(at("ldap"), "p.toml:6:1");
    assert_eq!(at("ldap.uri"), "p.toml:7:7");
    assert_eq!(at("ldap.uri[0]"), "p.toml:7:8");
    assert_eq!(at("ldap.uri[1]"), "p.toml:7:37");
    assert_eq!(at("ldap.user_base"), "p.toml:15:13");
    assert_eq!(at("offline.max_age"), "p.toml:19:11");
    assert_eq!(p.store.sources.len(), 16);
    assert!(p.store.warnings().is_empty());
}

#[test]
fn the_smallest_directories_need_few_keys() {
    // This host's slapd through its socket, bound as root by SASL EXTERNAL.
    let p = parse("[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = \"ldapi:///\"\nbase = \"dc=example,dc=org\"\n").unwrap();
    let l = p.store.ldap.unwrap();
    assert_eq!(l.uris, ["ldapi:///"]);
    assert_eq!(l.bind, Bind::SaslExternal);
    assert_eq!(l.timeout, Duration::from_secs(3));
    assert!(!l.starttls && !l.link_oath_users && l.ca_file.is_none());
    // A socket path of its own, percent-encoded; a timeout in milliseconds.
    let p = parse("[store.ldap]\nuri = [\"ldapi://%2Frun%2Fslapd%2Fldapi\", \"ldapi:///\"]\nbase = \"dc=org\"\ntimeout = \"250ms\"\n").unwrap();
    assert_eq!(p.store.backend, Backend::Files);
    assert_eq!(p.store.ldap.unwrap().timeout, Duration::from_millis(250));
    // Plain ldap:// to this host on a port only root may listen on needs no StartTLS (a bind
    // DN still, as it is no socket).
    for host in [
        "127.0.0.1",
        "[::1]:389",
        "localhost",
        "127.0.0.53",
        "localhost:1023",
    ] {
        let text = format!(
            "[store.ldap]\nuri = \"ldap://{host}\"\nbase = \"dc=org\"\nbind_dn = \"cn=twofold,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\n"
        );
        parse(&text).unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    // ldap:// elsewhere with StartTLS.
    parse("[store.ldap]\nuri = \"ldap://ldap.example.org\"\nstarttls = true\nbase = \"dc=org\"\nbind_dn = \"cn=twofold,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\n").unwrap();
    // The bounds of the timeout are allowed.
    for t in ["100ms", "30s", "1s500ms"] {
        parse(&format!(
            "[store.ldap]\nuri = \"ldapi:///\"\nbase = \"dc=org\"\ntimeout = \"{t}\"\n"
        ))
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
}

#[test]
fn every_mistake_names_file_line_and_column() {
    const LDAPI: &str = "[store.ldap]\nuri = \"ldapi:///\"\nbase = \"dc=org\"\n";
    const BIND: &str =
        "bind_dn = \"cn=twofold,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\n";
    let cases: Vec<(String, &str)> = vec![
        // Unknown keys, in each table.
        ("[store]\nbakend = \"ldap\"\n".into(), "p.toml:2:1: unknown key `bakend`, expected one of `backend`, `ldap`, `offline`"),
        (format!("{LDAPI}url = \"ldapi:///\"\n"), "p.toml:4:1: unknown key `url`, expected one of `uri`, `base`, `bind_dn`, `bind_password_file`, `starttls`, `ca_file`, `timeout`, `link_oath_users`, `user_base`"),
        ("[store.offline]\nmaxage = \"3d\"\n".into(), "p.toml:2:1: unknown key `maxage`, expected `enabled` or `max_age`"),
        ("store = \"ldap\"\n".into(), "p.toml:1:9: invalid type: string \"ldap\", expected a table"),
        // Values of the wrong kind.
        ("[store]\nbackend = \"sql\"\n".into(), "p.toml:2:11: invalid backend \"sql\": expected \"files\" (the state directory, /var/lib/twofold) or \"ldap\" (a directory, as [store.ldap] says)"),
        (format!("{LDAPI}starttls = \"yes\"\n"), "p.toml:4:12: invalid type: string \"yes\", expected a boolean"),
        ("[store.ldap]\nuri = 389\n".into(), "p.toml:2:7: invalid type: integer `389`, expected a URI string or an array of them"),
        ("[store.offline]\nenabled = 1\n".into(), "p.toml:2:11: invalid type: integer `1`, expected a boolean"),
        // backend = "ldap" without the directory, or half of it.
        ("[store]\nbackend = \"ldap\"\n".into(), "p.toml:2:11: backend = \"ldap\" needs a [store.ldap] table with uri and base: where the directory is and where twofold's entries live in it"),
        ("[store]\nbackend = \"ldap\"\n\n[store.ldap]\nbase = \"dc=org\"\n".into(), "p.toml:4:1: [store.ldap] has no uri: write where the directory is, e.g. uri = \"ldapi:///\" (this host's slapd) or \"ldaps://ldap.example.org\""),
        ("[store.ldap]\nuri = \"ldapi:///\"\n".into(), "p.toml:1:1: [store.ldap] has no base: write the DN under which twofold's entries live, e.g. base = \"ou=twofold,dc=example,dc=org\""),
        // The bind: both keys or neither; neither only over ldapi://.
        (format!("{LDAPI}bind_dn = \"cn=twofold,dc=org\"\n"), "p.toml:4:11: bind_dn needs bind_password_file: the file holding its password (root's, mode 0600)"),
        (format!("{LDAPI}bind_password_file = \"/etc/twofold/ldap.secret\"\n"), "p.toml:4:22: bind_password_file without bind_dn: write the bind_dn whose password it holds, or leave both out to bind with SASL EXTERNAL over ldapi://"),
        ("[store.ldap]\nuri = [\"ldapi:///\", \"ldaps://ldap.example.org\"]\nbase = \"dc=org\"\n".into(), "p.toml:2:21: uri \"ldaps://ldap.example.org\" needs bind_dn and bind_password_file: without them twofold binds with SASL EXTERNAL, which only ldapi:// (the local socket) offers"),
        (format!("{LDAPI}{BIND}bind_password_file = \"etc/ldap.secret\"\n"), "p.toml:6:1: duplicate key `bind_password_file`: each key may be set only once in a file"),
        ("[store.ldap]\nuri = \"ldapi:///\"\nbase = \"dc=org\"\nbind_dn = \"cn=twofold,dc=org\"\nbind_password_file = \"etc/ldap.secret\"\n".into(), "p.toml:5:22: invalid bind_password_file \"etc/ldap.secret\": expected an absolute path"),
        (format!("{LDAPI}ca_file = \"\"\n"), "p.toml:4:11: invalid ca_file \"\": expected an absolute path"),
        // Plain LDAP over the network.
        (format!("[store.ldap]\nuri = [\"ldaps://a.example.org\", \"ldap://b.example.org\"]\nbase = \"dc=org\"\n{BIND}"), "p.toml:2:33: uri \"ldap://b.example.org\" is plain LDAP over the network: the bind password and the users' TOTP secrets would cross it in clear text; write starttls = true, or use ldaps://"),
        (format!("[store.ldap]\nuri = \"ldap://10.0.0.5:389\"\nstarttls = false\nbase = \"dc=org\"\n{BIND}"), "p.toml:2:7: uri \"ldap://10.0.0.5:389\" is plain LDAP over the network: the bind password and the users' TOTP secrets would cross it in clear text; write starttls = true, or use ldaps://"),
        // Plain LDAP to this host on a port any local user may listen on (while the server
        // does not: a restart, a tunnel down): the service account's password to them, and
        // entries of their choosing back.
        (format!("[store.ldap]\nuri = \"ldap://127.0.0.1:3890\"\nbase = \"dc=org\"\n{BIND}"), "p.toml:2:7: uri \"ldap://127.0.0.1:3890\" is plain LDAP to port 3890 of this host, where any local user may listen while the server does not: the bind password would go to them and their answers would be taken for the directory's; write starttls = true, or use ldaps://, ldapi:// or a port below 1024"),
        (format!("[store.ldap]\nuri = [\"ldapi:///\", \"ldap://[::1]:1024\"]\nstarttls = false\nbase = \"dc=org\"\n{BIND}"), "p.toml:2:21: uri \"ldap://[::1]:1024\" is plain LDAP to port 1024 of this host, where any local user may listen while the server does not: the bind password would go to them and their answers would be taken for the directory's; write starttls = true, or use ldaps://, ldapi:// or a port below 1024"),
        // URIs that do not parse.
        ("[store.ldap]\nuri = \"http://ldap.example.org\"\n".into(), "p.toml:2:7: invalid uri \"http://ldap.example.org\": unknown scheme \"http\"; expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = [\"ldaps://ldap.example.org/dc=example,dc=org\"]\n".into(), "p.toml:2:8: invalid uri \"ldaps://ldap.example.org/dc=example,dc=org\": \"/dc=example,dc=org\" after the server: write only the server here (the DN goes into base); expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = \"ldaps://ldap.example.org:636x\"\n".into(), "p.toml:2:7: invalid uri \"ldaps://ldap.example.org:636x\": port \"636x\" is not a number from 1 to 65535; expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = \"ldaps:///\"\n".into(), "p.toml:2:7: invalid uri \"ldaps:///\": no host: name the directory server (twofold does not guess the client library's default); expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = \"ldapi://run%2Fslapd%2Fldapi\"\n".into(), "p.toml:2:7: invalid uri \"ldapi://run%2Fslapd%2Fldapi\": the socket path \"run/slapd/ldapi\" is not absolute (write its slashes as %2F, e.g. ldapi://%2Frun%2Fslapd%2Fldapi); expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = \"ldapi://%2Frun%2\"\n".into(), "p.toml:2:7: invalid uri \"ldapi://%2Frun%2\": a % not followed by two hex digits; expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = \"ldap.example.org\"\n".into(), "p.toml:2:7: invalid uri \"ldap.example.org\": it is not a URI (scheme://host); expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("[store.ldap]\nuri = []\n".into(), "p.toml:2:7: uri is an empty list: write the directory's URI, e.g. \"ldapi:///\" or \"ldaps://ldap.example.org\", or a list tried in order"),
        // DNs.
        ("[store.ldap]\nbase = \"example.org\"\n".into(), "p.toml:2:8: invalid base \"example.org\": component 1 (\"example.org\") is not attr=value; expected a DN such as \"ou=twofold,dc=example,dc=org\""),
        ("[store.ldap]\nbase = \"\"\n".into(), "p.toml:2:8: invalid base \"\": it is empty; expected a DN such as \"ou=twofold,dc=example,dc=org\""),
        (format!("{LDAPI}bind_dn = \"cn=twofold,,dc=org\"\n"), "p.toml:4:11: invalid bind_dn \"cn=twofold,,dc=org\": component 2 (\"\") is not attr=value; expected a DN such as \"ou=twofold,dc=example,dc=org\""),
        (format!("{LDAPI}user_base = \"ou=people,dc=\"\n"), "p.toml:4:13: invalid user_base \"ou=people,dc=\": component 2 (dc=) has an empty value; expected a DN such as \"ou=twofold,dc=example,dc=org\""),
        // link_oath_users needs user_base.
        (format!("{LDAPI}link_oath_users = true\n"), "p.toml:4:19: link_oath_users = true needs user_base: the DN under which user entries are searched by uid, e.g. user_base = \"ou=people,dc=example,dc=org\""),
        // Timeouts and ages.
        (format!("{LDAPI}timeout = \"50ms\"\n"), "p.toml:4:11: invalid timeout \"50ms\": expected from \"100ms\" to \"30s\""),
        (format!("{LDAPI}timeout = \"31s\"\n"), "p.toml:4:11: invalid timeout \"31s\": expected from \"100ms\" to \"30s\""),
        (format!("{LDAPI}timeout = \"3\"\n"), "p.toml:4:11: invalid timeout \"3\": the last number has no unit; write a number and a unit (ms, s, m), e.g. \"3s\" or \"500ms\", from \"100ms\" to \"30s\""),
        (format!("{LDAPI}timeout = 3\n"), "p.toml:4:11: invalid type: integer `3`, expected a duration string such as \"3s\" or \"500ms\""),
        ("[store.offline]\nmax_age = \"3days\"\n".into(), "p.toml:2:11: invalid duration \"3days\": unknown unit; write a number and a unit (s, m, h, d, w), e.g. \"7d\", \"12h\", \"15m\" or \"1d12h\""),
        ("[store.offline]\nmax_age = \"0s\"\n".into(), "p.toml:2:11: invalid max_age \"0s\": no copy would ever be used; write enabled = false instead, or a duration such as \"3d\""),
    ];
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        match parse(text) {
            Ok(_) => failures.push(format!("accepted:\n{text}")),
            Err(got) if got != *expected => {
                failures.push(format!("{text}\n  expected: {expected}\n  got:      {got}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dropins_override_store_keys_one_by_one() {
    let main = "[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = \"ldaps://a.example.org\"\nbase = \"dc=example,dc=org\"\nbind_dn = \"cn=twofold,dc=example,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\ntimeout = \"5s\"\n";
    // A later file's uri replaces the earlier one; every other key stays where it was set.
    let (_tmp, path) = files(
        main,
        &[
            (
                "50-b.toml",
                "[store.ldap]\nuri = [\"ldaps://b.example.org\", \"ldaps://c.example.org\"]\n",
            ),
            (
                "60-offline.toml",
                "\n[store.offline]\nenabled = true\nmax_age = \"12h\"\n",
            ),
        ],
    );
    let p = Policy::load_system(&path).unwrap();
    let l = p.store.ldap.as_ref().unwrap();
    assert_eq!(l.uris, ["ldaps://b.example.org", "ldaps://c.example.org"]);
    assert_eq!(l.timeout, Duration::from_secs(5));
    assert_eq!(p.store.offline.max_age, PolicyDuration(12 * 3600));
    let file_of = |k: &str| {
        let s = &p.store.sources[k];
        format!(
            "{}:{}",
            s.file.file_name().unwrap().to_string_lossy(),
            s.line
        )
    };
    assert_eq!(file_of("ldap.uri"), "50-b.toml:2");
    assert_eq!(file_of("ldap.uri[1]"), "50-b.toml:2");
    assert_eq!(file_of("ldap.timeout"), "policy.toml:8");
    assert_eq!(file_of("ldap"), "policy.toml:3");
    assert_eq!(file_of("offline.enabled"), "60-offline.toml:3");
    // Policy::apply, one file on top of another, does the same.
    let mut q = Policy::parse_one(Path::new("a.toml"), main).unwrap();
    q.apply(
        Path::new("b.toml"),
        "[store.ldap]\nuri = \"ldaps://b.example.org\"\n",
    )
    .unwrap();
    assert_eq!(
        q.store.ldap.as_ref().unwrap().uris,
        ["ldaps://b.example.org"]
    );
    assert_eq!(q.store.sources["ldap.base"].file, Path::new("a.toml"));
    assert_eq!(q.store.sources["ldap.uri"].file, Path::new("b.toml"));
    let err = q
        .apply(
            Path::new("c.toml"),
            "[store.ldap]\nuri = \"ldap://d.example.org\"\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml:2:7: uri \"ldap://d.example.org\" is plain LDAP"),
        "{err}"
    );

    // The rules between keys hold for the effective values: a drop-in may complete what the
    // main file began ...
    let (_tmp, path) = files(
        "[store]\nbackend = \"ldap\"\n",
        &[(
            "50-ldap.toml",
            "[store.ldap]\nuri = \"ldapi:///\"\nbase = \"dc=org\"\n",
        )],
    );
    let p = Policy::load_system(&path).unwrap();
    assert_eq!(p.store.backend, Backend::Ldap);
    assert_eq!(p.store.ldap.unwrap().bind, Bind::SaslExternal);
    // ... and the error names the key at fault, in whichever file set it: here the main file's
    // URI, made plain text by the drop-in's starttls = false.
    let (tmp, path) = files(
        "[store.ldap]\nuri = \"ldap://ldap.example.org\"\nstarttls = true\nbase = \"dc=org\"\nbind_dn = \"cn=twofold,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\n",
        &[("90-no-tls.toml", "[store.ldap]\nstarttls = false\n")],
    );
    let err = Policy::load_system(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:7: uri \"ldap://ldap.example.org\" is plain LDAP over the network: the bind password and the users' TOTP secrets would cross it in clear text; write starttls = true, or use ldaps://",
            path.display()
        )
    );
    // A drop-in's link_oath_users without a user_base anywhere: the drop-in's key.
    write(
        &tmp.path().join("policy.d/90-no-tls.toml"),
        "[store.ldap]\n\nlink_oath_users = true\n",
    );
    let err = Policy::load_system(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}:3:19: link_oath_users = true needs user_base",
            tmp.path().join("policy.d/90-no-tls.toml").display()
        )),
        "{err}"
    );
    // The main file's user_base satisfies it.
    let main_text = std::fs::read_to_string(&path).unwrap();
    write(
        &path,
        &format!("{main_text}user_base = \"ou=people,dc=org\"\n"),
    );
    let p = Policy::load_system(&path).unwrap();
    assert!(p.store.ldap.unwrap().link_oath_users);
}

#[test]
fn offline_copies_with_the_files_backend_are_a_warning() {
    let p = parse("[store]\nbackend = \"files\"\n\n[store.offline]\nenabled = true\n").unwrap();
    assert_eq!(
        p.store.warnings(),
        [
            "[store.offline] (p.toml:4:1) has no effect with backend = \"files\": offline copies are kept only for the ldap backend"
        ]
    );
    let p = parse(EXAMPLE).unwrap();
    assert!(p.store.warnings().is_empty());
}

#[test]
fn a_store_built_by_hand_keeps_its_values_through_apply() {
    let mut p = Policy::default();
    p.store.backend = Backend::Ldap;
    p.store.offline.enabled = true;
    p.store.ldap = parse(EXAMPLE).unwrap().store.ldap;
    let before = p.store.clone();
    p.apply(Path::new("b.toml"), "mode = \"required\"\n")
        .unwrap();
    assert_eq!(p.store, before);
    p.apply(Path::new("c.toml"), "[store.ldap]\ntimeout = \"1s\"\n")
        .unwrap();
    let l = p.store.ldap.as_ref().unwrap();
    assert_eq!(l.timeout, Duration::from_secs(1));
    assert_eq!(l.uris, before.ldap.as_ref().unwrap().uris);
    assert_eq!(p.store.backend, Backend::Ldap);
    assert!(p.store.offline.enabled);
}
