//! The LDAP client (`twofold_policy::ldap`) against a real, private slapd (OpenLDAP 2.5, as
//! Debian 12 ships it) started for each test in a temporary directory: binds, SASL EXTERNAL
//! over ldapi as root, add/search/modify/delete, compare-and-swap between two connections,
//! filters with special bytes, StartTLS and ldaps with a test CA, a server stopped under an
//! open connection. Misbehaving servers are faked in `ldap_fake_servers.rs`.
//!
//! The slapd tests need root (slapd reads its key and serves peer credentials as root) and
//! slapd, slapadd, slappasswd and openssl; without them they say why and pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use twofold_policy::ldap::{
    Auth, Conn, Entry, Filter, LdapError, LdapUrl, Mod, Options, Scope, escape_dn_value,
};
use zeroize::Zeroizing;

const BASE: &str = "dc=example,dc=org";
const PEOPLE: &str = "ou=people,dc=example,dc=org";
const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "admin secret";
const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";
const ALICE_PW: &str = "alice's password";

/// A slapd of this test alone, killed when dropped.
struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    ldapi: LdapUrl,
    ldap_port: u16,
    ldaps_port: u16,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, made with
/// openssl in `dir` under `name`.crt/.key (the CA) and server.crt/.key.
fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ])
        .args(["-subj", &format!("/CN=twofold {name}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .stderr(Stdio::null()));
}

fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=localhost"])
        .stderr(Stdio::null()));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", "server.csr", "-days", "2"])
        .args(["-CA", &format!("{ca}.crt"), "-CAkey", &format!("{ca}.key")])
        .args([
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ])
        .stderr(Stdio::null()));
}

fn percent_encode(path: &Path) -> String {
    path.to_str()
        .unwrap()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn tools_present() -> bool {
    [
        "/usr/sbin/slapd",
        "/usr/sbin/slapadd",
        "/usr/sbin/slappasswd",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
        && Command::new("openssl").arg("version").output().is_ok()
}

/// A fresh slapd, or `None` (and why) when this machine cannot run one.
fn slapd() -> Option<Slapd> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the slapd tests need root (slapd serves ldapi peer credentials)");
        return None;
    }
    if !tools_present() {
        eprintln!("skipped: slapd, slapadd, slappasswd (slapd, ldap-utils) or openssl missing");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    make_server_cert(d, "ca");
    std::fs::create_dir(d.join("slapd.d")).unwrap();
    std::fs::create_dir(d.join("db")).unwrap();
    let hash = |pw: &str| {
        run(Command::new("/usr/sbin/slappasswd").args(["-s", pw]))
            .trim()
            .to_owned()
    };
    let peercred = "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth";
    let config = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\
         olcPidFile: {d}/slapd.pid\n\
         olcTLSCACertificateFile: {d}/ca.crt\n\
         olcTLSCertificateFile: {d}/server.crt\n\
         olcTLSCertificateKeyFile: {d}/server.key\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         include: file:///etc/ldap/schema/core.ldif\n\n\
         include: file:///etc/ldap/schema/cosine.ldif\n\n\
         include: file:///etc/ldap/schema/nis.ldif\n\n\
         include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
         dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\n\
         dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\n\
         olcAccess: {{0}}to * by dn.exact={peercred} manage by * break\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcDbDirectory: {d}/db\n\
         olcDbMaxSize: 16777216\nolcSuffix: {BASE}\nolcRootDN: {ADMIN}\nolcRootPW: {root_pw}\n\
         olcAccess: {{0}}to * by dn.exact={peercred} manage by * break\n\
         olcAccess: {{1}}to attrs=userPassword by self write by anonymous auth by * none\n\
         olcAccess: {{2}}to * by * read\n",
        d = d.display(),
        root_pw = hash(ADMIN_PW),
    );
    std::fs::write(d.join("config.ldif"), config).unwrap();
    let data = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {ALICE}\nobjectClass: account\nobjectClass: simpleSecurityObject\nuid: alice\n\
         userPassword: {}\n",
        hash(ALICE_PW)
    );
    std::fs::write(d.join("data.ldif"), data).unwrap();
    let slapd_d = d.join("slapd.d");
    run(Command::new("/usr/sbin/slapadd")
        .args(["-n0", "-F"])
        .arg(&slapd_d)
        .arg("-l")
        .arg(d.join("config.ldif")));
    run(Command::new("/usr/sbin/slapadd")
        .args(["-n1", "-F"])
        .arg(&slapd_d)
        .arg("-l")
        .arg(d.join("data.ldif")));

    let socket = d.join("ldapi");
    let ldap_port = free_port();
    let ldaps_port = std::iter::repeat_with(free_port)
        .find(|p| *p != ldap_port)
        .unwrap();
    let urls = format!(
        "ldapi://{} ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/ \
         ldaps://127.0.0.2:{ldaps_port}/",
        percent_encode(&socket)
    );
    let log = std::fs::File::create(d.join("slapd.log")).unwrap();
    let mut child = Command::new("/usr/sbin/slapd")
        .arg("-F")
        .arg(&slapd_d)
        .args(["-h", &urls, "-d", "0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "slapd exited ({status}):\n{}",
                std::fs::read_to_string(d.join("slapd.log")).unwrap_or_default()
            );
        }
        let up = std::os::unix::net::UnixStream::connect(&socket).is_ok()
            && TcpStream::connect(("127.0.0.1", ldap_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", ldaps_port)).is_ok();
        if up {
            break;
        }
        assert!(Instant::now() < ready, "slapd did not start listening");
        thread::sleep(Duration::from_millis(20));
    }
    let ldapi = LdapUrl::Ldapi(socket);
    Some(Slapd {
        child,
        dir,
        ldapi,
        ldap_port,
        ldaps_port,
    })
}

impl Slapd {
    fn ldap(&self) -> LdapUrl {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
            .parse()
            .unwrap()
    }

    fn ca(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.crt"))
    }

    /// A connection over ldapi, bound as root through SASL EXTERNAL (manage rights).
    fn root(&self) -> Conn {
        let mut c = Conn::connect(&self.ldapi, &opts()).unwrap();
        c.bind(&Auth::SaslExternal).unwrap();
        c
    }
}

fn opts() -> Options {
    Options {
        timeout: Duration::from_secs(10),
        ..Options::default()
    }
}

fn simple(dn: &str, pw: &str) -> Auth {
    Auth::Simple {
        dn: dn.into(),
        password: Zeroizing::new(pw.as_bytes().to_vec()),
    }
}

fn one(c: &mut Conn, dn: &str, attrs: &[&str]) -> Result<Entry, LdapError> {
    let mut v = c.search(dn, Scope::Base, &Filter::present("objectClass"), attrs, 0)?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0))
}

fn values(e: &Entry, attr: &str) -> Vec<String> {
    let mut v: Vec<String> = e
        .get(attr)
        .unwrap_or_default()
        .iter()
        .map(|v| String::from_utf8(v.clone()).unwrap())
        .collect();
    v.sort();
    v
}

fn dns(entries: &[Entry]) -> Vec<&str> {
    let mut v: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
    v.sort();
    v
}

#[test]
fn ldap_simple_binds() {
    let Some(s) = slapd() else { return };
    let mut c = Conn::connect(&s.ldap(), &opts()).unwrap();
    assert!(!c.is_tls());
    c.bind(&Auth::Anonymous).unwrap();
    c.bind(&simple(ADMIN, ADMIN_PW)).unwrap();
    c.bind(&simple(ALICE, ALICE_PW)).unwrap();

    let e = c.bind(&simple(ALICE, "wrong password")).unwrap_err();
    assert_eq!(e.code(), Some(49), "{e}");
    assert!(!e.is_unreachable() && !e.is_conflict());
    assert!(!format!("{e} {e:?}").contains("wrong password"));
    let e = c.bind(&simple("uid=nobody,ou=people,dc=example,dc=org", "x"));
    assert_eq!(e.unwrap_err().code(), Some(49));

    // An empty password is refused before anything is sent (servers may take it as an
    // unauthenticated bind, which succeeds), and the connection goes on.
    let e = c.bind(&simple(ALICE, "")).unwrap_err();
    assert!(matches!(e, LdapError::Invalid(_)), "{e}");
    c.bind(&simple(ALICE, ALICE_PW)).unwrap();
    let auth = simple(ALICE, ALICE_PW);
    assert!(!format!("{auth:?}").contains(ALICE_PW));
    c.unbind().unwrap();
}

#[test]
fn ldap_sasl_external_over_ldapi_is_root() {
    let Some(s) = slapd() else { return };
    let mut c = s.root();
    // Root manages the database: it reads userPassword, which nobody else may read.
    let alice = one(&mut c, ALICE, &["userPassword"]).unwrap();
    assert!(
        alice
            .first_str("userPassword")
            .unwrap()
            .starts_with("{SSHA}")
    );
    // Anonymous over TCP does not see it.
    let mut anon = Conn::connect(&s.ldap(), &opts()).unwrap();
    let alice = one(&mut anon, ALICE, &["userPassword", "uid"]).unwrap();
    assert_eq!(alice.get("userPassword"), None);
    assert_eq!(alice.first_str("uid"), Some("alice"));
    // EXTERNAL over plain TCP has no identity to offer.
    let e = anon.bind(&Auth::SaslExternal).unwrap_err();
    assert!(e.code().is_some(), "{e}");
}

#[test]
fn ldap_add_search_modify_delete() {
    let Some(s) = slapd() else { return };
    let mut c = s.root();
    let bob = format!("uid={},{PEOPLE}", escape_dn_value("bob"));
    c.add(
        &bob,
        &[
            ("objectClass", &[b"account", b"simpleSecurityObject"]),
            ("uid", &[b"bob"]),
            ("description", &[b"first", b"second"]),
            ("userPassword", &[b"\x00\x01\xff binary"]),
        ],
    )
    .unwrap();
    let e = c
        .add(&bob, &[("objectClass", &[b"account"]), ("uid", &[b"bob"])])
        .unwrap_err();
    assert!(e.is_conflict() && e.code() == Some(68), "{e}");

    let got = one(&mut c, &bob, &[]).unwrap();
    assert_eq!(got.dn, bob);
    assert_eq!(values(&got, "Description"), ["first", "second"]);
    assert_eq!(
        got.get("userpassword").unwrap(),
        &[b"\x00\x01\xff binary".to_vec()]
    );
    // Only the attributes asked for.
    let got = one(&mut c, &bob, &["uid"]).unwrap();
    assert_eq!(got.attrs.len(), 1);

    // Scopes.
    let f = Filter::present("objectClass");
    let all = c.search(BASE, Scope::Sub, &f, &["1.1"], 0).unwrap();
    assert_eq!(dns(&all), [BASE, PEOPLE, ALICE, bob.as_str()]);
    let below = c.search(PEOPLE, Scope::One, &f, &["1.1"], 0).unwrap();
    assert_eq!(dns(&below), [ALICE, bob.as_str()]);
    let e = c.search(PEOPLE, Scope::One, &f, &["1.1"], 1).unwrap_err();
    assert_eq!(e.code(), Some(4), "sizeLimitExceeded: {e}");
    let f = Filter::and([
        Filter::eq("objectClass", "account"),
        Filter::not(Filter::eq("uid", "alice")),
    ]);
    let found = c.search(BASE, Scope::Sub, &f, &["uid"], 0).unwrap();
    assert_eq!(dns(&found), [bob.as_str()]);
    let f = Filter::or([Filter::eq("uid", "alice"), Filter::eq("uid", "bob")]);
    assert_eq!(c.search(BASE, Scope::Sub, &f, &[], 0).unwrap().len(), 2);
    let f = Filter::or([]);
    assert_eq!(c.search(BASE, Scope::Sub, &f, &[], 0).unwrap().len(), 0);

    // Modify: replace, add, delete a value, delete the attribute.
    c.modify(&bob, &[Mod::replace("description", vec![b"only".to_vec()])])
        .unwrap();
    assert_eq!(
        values(&one(&mut c, &bob, &[]).unwrap(), "description"),
        ["only"]
    );
    c.modify(
        &bob,
        &[
            Mod::add("description", vec![b"two".to_vec(), b"three".to_vec()]),
            Mod::delete("description", vec![b"only".to_vec()]),
        ],
    )
    .unwrap();
    let got = one(&mut c, &bob, &[]).unwrap();
    assert_eq!(values(&got, "description"), ["three", "two"]);
    c.modify(&bob, &[Mod::delete("description", vec![])])
        .unwrap();
    assert_eq!(one(&mut c, &bob, &[]).unwrap().get("description"), None);

    // Many operations in a row on one connection.
    for i in 0..200 {
        let v = format!("v{i}");
        c.modify(
            &bob,
            &[Mod::replace("description", vec![v.clone().into_bytes()])],
        )
        .unwrap();
        assert_eq!(values(&one(&mut c, &bob, &[]).unwrap(), "description"), [v]);
    }

    // Delete; then it is gone.
    c.delete(&bob).unwrap();
    let e = one(&mut c, &bob, &[]).unwrap_err();
    assert!(e.is_no_such_object(), "{e}");
    assert!(c.delete(&bob).unwrap_err().is_no_such_object());
    let e = c
        .modify(&bob, &[Mod::replace("description", vec![b"x".to_vec()])])
        .unwrap_err();
    assert!(e.is_no_such_object(), "{e}");
    // A refusal does not break the connection.
    one(&mut c, ALICE, &[]).unwrap();
    c.unbind().unwrap();
}

#[test]
fn ldap_compare_and_swap_race() {
    let Some(s) = slapd() else { return };
    let mut a = s.root();
    let mut b = Conn::connect(&s.ldap(), &opts()).unwrap();
    b.bind(&simple(ADMIN, ADMIN_PW)).unwrap();
    let dn = format!("uid=carol,{PEOPLE}");
    a.add(
        &dn,
        &[
            ("objectClass", &[b"account"]),
            ("uid", &[b"carol"]),
            ("description", &[b"step=100"]),
        ],
    )
    .unwrap();
    // Both read step 100; each swaps it for its own newer step.
    let read_a = one(&mut a, &dn, &["description"]).unwrap();
    let read_b = one(&mut b, &dn, &["description"]).unwrap();
    let old = read_a.get("description").unwrap()[0].clone();
    assert_eq!(read_b.get("description").unwrap()[0], old);
    let cas = |new: &str| {
        [
            Mod::delete("description", vec![old.clone()]),
            Mod::add("description", vec![new.as_bytes().to_vec()]),
        ]
    };
    a.modify(&dn, &cas("step=101")).unwrap();
    let e = b.modify(&dn, &cas("step=102")).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.code(), Some(16), "noSuchAttribute: {e}");
    // All or nothing: the loser's add did not happen.
    let now = one(&mut b, &dn, &["description"]).unwrap();
    assert_eq!(values(&now, "description"), ["step=101"]);
    // The loser reads again and wins the next round.
    b.modify(
        &dn,
        &[
            Mod::delete("description", vec![b"step=101".to_vec()]),
            Mod::add("description", vec![b"step=102".to_vec()]),
        ],
    )
    .unwrap();
    // Adding a value that is there is a conflict too.
    let e = a
        .modify(&dn, &[Mod::add("description", vec![b"step=102".to_vec()])])
        .unwrap_err();
    assert!(e.is_conflict() && e.code() == Some(20), "{e}");
}

#[test]
fn ldap_filter_values_are_literal() {
    let Some(s) = slapd() else { return };
    let mut c = s.root();
    let people = [
        ("star", "a*b", &b"nul\0byte"[..]),
        ("x", "aXb", b"nul"),
        ("paren", "(x)", b"*"),
        ("slash", "back\\slash", b")(uid=*"),
    ];
    for (uid, desc, pw) in people {
        c.add(
            &format!("uid={uid},{PEOPLE}"),
            &[
                ("objectClass", &[b"account", b"simpleSecurityObject"]),
                ("uid", &[uid.as_bytes()]),
                ("description", &[desc.as_bytes()]),
                ("userPassword", &[pw]),
            ],
        )
        .unwrap();
    }
    let find = |c: &mut Conn, f: Filter| -> Vec<String> {
        let found = c.search(PEOPLE, Scope::One, &f, &["uid"], 0).unwrap();
        let mut v: Vec<String> = found
            .iter()
            .map(|e| e.first_str("uid").unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(find(&mut c, Filter::eq("description", "a*b")), ["star"]);
    assert_eq!(find(&mut c, Filter::eq("description", "(x)")), ["paren"]);
    assert_eq!(
        find(&mut c, Filter::eq("description", "back\\slash")),
        ["slash"]
    );
    assert_eq!(
        find(&mut c, Filter::eq("description", "*")),
        [] as [&str; 0]
    );
    assert_eq!(
        find(&mut c, Filter::eq("userPassword", b"nul\0byte")),
        ["star"]
    );
    assert_eq!(find(&mut c, Filter::eq("userPassword", b"nul")), ["x"]);
    assert_eq!(find(&mut c, Filter::eq("userPassword", b"*")), ["paren"]);
    assert_eq!(
        find(&mut c, Filter::eq("userPassword", b")(uid=*")),
        ["slash"]
    );
    // An injection attempt through a user name matches nothing.
    assert_eq!(
        find(&mut c, Filter::eq("uid", "*)(objectClass=*")),
        [] as [&str; 0]
    );
    // A user name with DN specials names one entry, escaped.
    let odd = "o,dd+=\"#<>; ";
    let dn = format!("uid={},{PEOPLE}", escape_dn_value(odd));
    c.add(
        &dn,
        &[("objectClass", &[b"account"]), ("uid", &[odd.as_bytes()])],
    )
    .unwrap();
    let got = one(&mut c, &dn, &["uid"]).unwrap();
    assert_eq!(got.first_str("uid"), Some(odd));
    assert_eq!(find(&mut c, Filter::eq("uid", odd)), [odd]);
}

#[cfg(feature = "tls")]
#[test]
fn ldap_starttls_and_ldaps() {
    let Some(s) = slapd() else { return };
    let with_ca = |ca: Option<PathBuf>, starttls: bool| Options {
        starttls,
        ca_file: ca,
        ..opts()
    };
    let good = with_ca(Some(s.ca("ca")), true);
    // StartTLS by address and by name.
    let mut c = Conn::connect(&s.ldap(), &good).unwrap();
    assert!(c.is_tls());
    c.bind(&simple(ALICE, ALICE_PW)).unwrap();
    one(&mut c, ALICE, &[]).unwrap();
    c.unbind().unwrap();
    let by_name: LdapUrl = format!("ldap://localhost:{}", s.ldap_port).parse().unwrap();
    let mut c = Conn::connect(&by_name, &good).unwrap();
    assert!(c.is_tls());
    c.bind(&simple(ADMIN, ADMIN_PW)).unwrap();
    // ldaps.
    let ldaps: LdapUrl = format!("ldaps://127.0.0.1:{}/", s.ldaps_port)
        .parse()
        .unwrap();
    let mut c = Conn::connect(&ldaps, &with_ca(Some(s.ca("ca")), false)).unwrap();
    assert!(c.is_tls());
    c.bind(&simple(ALICE, ALICE_PW)).unwrap();
    for _ in 0..50 {
        one(&mut c, ALICE, &[]).unwrap();
    }
    c.unbind().unwrap();

    // Refused: another CA, the system's CAs, and a name the certificate does not carry.
    for (url, o) in [
        (s.ldap(), with_ca(Some(s.ca("other-ca")), true)),
        (ldaps.clone(), with_ca(Some(s.ca("other-ca")), false)),
        (s.ldap(), with_ca(None, true)),
        (ldaps.clone(), with_ca(None, false)),
        (
            format!("ldaps://127.0.0.2:{}", s.ldaps_port)
                .parse()
                .unwrap(),
            with_ca(Some(s.ca("ca")), false),
        ),
    ] {
        let e = Conn::connect(&url, &o).unwrap_err();
        assert!(matches!(e, LdapError::Tls(_)), "{url}: {e}");
        assert!(!e.is_unreachable(), "{e}");
    }
    // A CA file that is not there, or holds no certificate.
    let e = Conn::connect(&ldaps, &with_ca(Some(s.dir.path().join("none.crt")), false));
    assert!(matches!(e.unwrap_err(), LdapError::Tls(_)));
    let e = Conn::connect(
        &ldaps,
        &with_ca(Some(s.dir.path().join("server.ext")), false),
    );
    assert!(matches!(e.unwrap_err(), LdapError::Tls(_)));
}

#[test]
fn ldap_a_stopped_server_is_unreachable() {
    let Some(mut s) = slapd() else { return };
    let mut c = s.root();
    let mut t = Conn::connect(&s.ldap(), &opts()).unwrap();
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let e = one(&mut c, ALICE, &[]).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    let e = t.bind(&simple(ALICE, ALICE_PW)).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    // Broken for good.
    assert!(one(&mut c, ALICE, &[]).unwrap_err().is_unreachable());
    let e = Conn::connect(&s.ldapi, &opts()).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    let e = Conn::connect(&s.ldap(), &opts()).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
}
