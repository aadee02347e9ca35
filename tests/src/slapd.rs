//! A private OpenLDAP directory for the system tests (issue #23): a `slapd` of its own in a
//! temporary directory, with the otp overlay and twofold's schema, the accounts and ACLs a
//! site would give twofold, a pair of providers in mirror mode, and [`NssHost`]: a private
//! mount namespace whose user database is that directory (nslcd + libnss-ldapd), so that
//! directory users exist for programs run there and nowhere else.
//!
//! Everything runs as root (the tests skip otherwise) from the Debian packages `slapd`,
//! `ldap-utils`, `nslcd` and `libnss-ldapd`; the host's slapd, nslcd, `/etc/nsswitch.conf`,
//! `/etc/nslcd.conf` and `/run/nslcd` are never used or touched. A process killed outright
//! leaves nothing running either: each daemon is stopped by a watcher when the pipe from the
//! test process closes.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The suffix of the directory's database.
pub const BASE: &str = "dc=example,dc=org";

/// How long a daemon may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also serve TLS: a test CA and a server certificate for 127.0.0.1 made with `openssl`,
    /// an `ldaps://` listener, and StartTLS on the `ldap://` one.
    pub tls: bool,
}

/// Who replicates with whom, for the providers of [`Slapd::start_mirror_pair`].
struct Mirror {
    server_id: u8,
    peer_url: String,
}

/// A running (or stopped, see [`Slapd::stop`]) private slapd: `dc=example,dc=org` in an mdb
/// database, the otp overlay, twofold's schema, listening on a socket in its temporary
/// directory and on 127.0.0.1. Stopped, and its directory removed, when dropped.
pub struct Slapd {
    dir: tempfile::TempDir,
    ldap_port: u16,
    ldaps_port: Option<u16>,
    admin_password: String,
    service_password: String,
    process: Option<Watched>,
}

/// A daemon started through a small shell watcher: the watcher stops it (SIGTERM) when its
/// stdin, a pipe from this process, closes, so the daemon never outlives the test process.
struct Watched {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    /// `sh -c SCRIPT sh ARGS…` where SCRIPT starts the daemon as `"$@"` in the background.
    fn spawn(prelude: &str, args: &[&OsStr], log: &Path, unshare: bool) -> io::Result<Watched> {
        // Job control is off: a background job gets /dev/null as stdin, so the watcher reads
        // the pipe from a copy on descriptor 3. The shell waits for the daemon (its child: the
        // pid cannot be reused before that) and then ends the watcher.
        let script = format!(
            "{prelude}\nexec 3<&0\n\"$@\" 3<&- </dev/null &\npid=$!\n\
             (read _ <&3; kill \"$pid\" 2>/dev/null) &\nwatcher=$!\nexec 3<&-\n\
             wait \"$pid\"; st=$?\nkill \"$watcher\" 2>/dev/null\nexit \"$st\"\n"
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = if unshare {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh"]);
            c
        } else {
            Command::new("sh")
        };
        let mut child = cmd
            .args(["-c", &script, "sh"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watched { child, stdin })
    }

    /// Whether it has ended (and how).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Closes the pipe (the watcher sends SIGTERM) and waits for the end, killing the
    /// watcher's shell after `timeout`.
    fn stop(mut self, timeout: Duration) -> io::Result<()> {
        drop(self.stdin.take());
        let t = Instant::now();
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(io::Error::other(format!(
                    "pid {} did not stop within {timeout:?}",
                    self.child.id()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            let t = Instant::now();
            while let Ok(None) = self.child.try_wait() {
                if t.elapsed() > Duration::from_secs(10) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Slapd {
    /// Starts a directory: its `cn=config` made with `slapadd -n0` (back_mdb, the otp and
    /// syncprov modules, the core, cosine, nis and inetorgperson schemas and
    /// `packaging/ldap/twofold.ldif`, the otp overlay on the database), then the base entries
    /// and the twofold service account added, once it answers.
    pub fn start(options: &Options) -> io::Result<Slapd> {
        let slapd = Slapd::configure(options, None, free_port()?, random_password()?, None)?;
        slapd.add_base_entries()?;
        Ok(slapd)
    }

    /// Two providers of `dc=example,dc=org` replicating to each other (multi-provider, the
    /// mirror mode of older releases: server ids 1 and 2, syncprov, each a refreshAndPersist
    /// consumer of the other as the admin). The base entries are added to the first; when
    /// this returns they have reached the second, and a change on the second the first. Both
    /// have the same passwords.
    pub fn start_mirror_pair(options: &Options) -> io::Result<(Slapd, Slapd)> {
        let (port1, port2) = (free_port()?, free_port()?);
        let admin = random_password()?;
        let service = random_password()?;
        let url = |p: u16| format!("ldap://127.0.0.1:{p}/");
        let one = Slapd::configure(
            options,
            Some(Mirror {
                server_id: 1,
                peer_url: url(port2),
            }),
            port1,
            admin.clone(),
            Some(service.clone()),
        )?;
        let two = Slapd::configure(
            options,
            Some(Mirror {
                server_id: 2,
                peer_url: url(port1),
            }),
            port2,
            admin,
            Some(service),
        )?;
        one.add_base_entries()?;
        let service = one.service_dn();
        two.wait_replicated(&service, "cn", "twofold", Duration::from_secs(30))?;
        // And back: the first started has retried its consumer of the second (every second).
        two.ldapmodify(&format!(
            "dn: {service}\nchangetype: modify\nreplace: description\ndescription: replicated\n"
        ))?;
        one.wait_replicated(
            &service,
            "description",
            "replicated",
            Duration::from_secs(30),
        )?;
        Ok((one, two))
    }

    /// The temporary directory, its configuration built and the daemon started.
    fn configure(
        options: &Options,
        mirror: Option<Mirror>,
        ldap_port: u16,
        admin_password: String,
        service_password: Option<String>,
    ) -> io::Result<Slapd> {
        let dir = tempfile::Builder::new()
            .prefix("twofold-slapd.")
            .tempdir()?;
        let service_password = match service_password {
            Some(p) => p,
            None => random_password()?,
        };
        let ldaps_port = if options.tls {
            Some(free_port()?)
        } else {
            None
        };
        let mut slapd = Slapd {
            dir,
            ldap_port,
            ldaps_port,
            admin_password,
            service_password,
            process: None,
        };
        if options.tls {
            slapd.make_certificates()?;
        }
        std::fs::create_dir(slapd.path("db"))?;
        std::fs::create_dir(slapd.path("slapd.d"))?;
        let config = slapd.config_ldif(mirror.as_ref())?;
        std::fs::write(slapd.path("config.ldif"), config)?;
        let out = Command::new("slapadd")
            .args(["-n0", "-F"])
            .arg(slapd.path("slapd.d"))
            .arg("-l")
            .arg(slapd.path("config.ldif"))
            .output()?;
        check("slapadd -n0", &out)?;
        slapd.start_again()?;
        Ok(slapd)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The generated `cn=config`, in `slapadd -n0` order: the modules before the schemas that
    /// need them (the otp module defines the OATH-LDAP schema itself).
    fn config_ldif(&self, mirror: Option<&Mirror>) -> io::Result<String> {
        let d = self.dir.path().display();
        let admin = self.admin_dn();
        let service = self.service_dn();
        let rootpw = ssha(&self.admin_password, self.dir.path())?;
        let mut l = String::new();
        let _ = write!(
            l,
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\
             olcPidFile: {d}/slapd.pid\nolcArgsFile: {d}/slapd.args\n\
             olcAuthzRegexp: {{0}}\"gidNumber=0\\+uidNumber=0,cn=peercred,cn=external,cn=auth\" \"{admin}\"\n"
        );
        if let Some(m) = mirror {
            let _ = writeln!(l, "olcServerID: {}", m.server_id);
        }
        if self.ldaps_port.is_some() {
            let _ = write!(
                l,
                "olcTLSCACertificateFile: {d}/tls/ca.pem\n\
                 olcTLSCertificateFile: {d}/tls/server.pem\n\
                 olcTLSCertificateKeyFile: {d}/tls/server.key\n"
            );
        }
        l.push_str(
            "\ndn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n\
             olcModulePath: /usr/lib/ldap\nolcModuleLoad: {0}back_mdb\nolcModuleLoad: {1}otp\n\
             olcModuleLoad: {2}syncprov\n\n\
             dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n",
        );
        for schema in ["core", "cosine", "nis", "inetorgperson"] {
            let file = format!("/etc/ldap/schema/{schema}.ldif");
            l.push_str(&read_ldif(Path::new(&file))?);
        }
        l.push_str(&read_ldif(
            &crate::workspace().join("packaging/ldap/twofold.ldif"),
        )?);
        let _ = write!(
            l,
            "dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\n\
             dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
             olcDatabase: {{0}}config\nolcAccess: {{0}}to * by dn.exact=\"{admin}\" manage by * none\n\n\
             dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: {BASE}\n\
             olcRootDN: {admin}\nolcRootPW: {rootpw}\nolcDbDirectory: {d}/db\n\
             olcDbMaxSize: 268435456\n\
             olcDbIndex: objectClass eq\nolcDbIndex: uid,cn,memberUid eq\n\
             olcDbIndex: uidNumber,gidNumber eq\nolcDbIndex: entryCSN,entryUUID eq\n\
             olcLimits: {{0}}dn.exact=\"{service}\" size=unlimited\n"
        );
        for (i, rule) in self.access_rules(true).iter().enumerate() {
            let _ = writeln!(l, "olcAccess: {{{i}}}{rule}");
        }
        if let Some(m) = mirror {
            let _ = write!(
                l,
                "olcSyncrepl: {{0}}rid={:03} provider={} bindmethod=simple binddn=\"{admin}\" \
                 credentials={} searchbase=\"{BASE}\" type=refreshAndPersist retry=\"1 +\" \
                 timeout=3 network-timeout=3\nolcMultiProvider: TRUE\n",
                m.server_id, m.peer_url, self.admin_password
            );
        }
        l.push('\n');
        let mut overlay = 0;
        if mirror.is_some() {
            let _ = write!(
                l,
                "dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config\n\
                 objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n\
                 olcOverlay: {{0}}syncprov\nolcSpCheckpoint: 100 10\n\n"
            );
            overlay = 1;
        }
        let _ = write!(
            l,
            "dn: olcOverlay={{{overlay}}}otp,olcDatabase={{1}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\nolcOverlay: {{{overlay}}}otp\n"
        );
        Ok(l)
    }

    /// The ACL of twofold's hosts (packaging/ldap/README.md): the service account owns
    /// ou=twofold and the OATH secrets; users and groups are readable by anyone (nslcd binds
    /// anonymously) except passwords, which only serve to bind. With `link`, the service
    /// account may also write, on people entries, exactly the object class value
    /// `oathTOTPUser` and the attribute `oathTOTPToken`: what `link_oath_users` changes.
    fn access_rules(&self, link: bool) -> Vec<String> {
        let service = self.service_dn();
        let twofold = self.twofold_base();
        let people = self.people_base();
        let mut rules = vec![
            "to attrs=userPassword by self =xw by anonymous auth by * none".to_owned(),
            format!("to attrs=oathSecret by dn.exact=\"{service}\" write by * none"),
            format!("to dn.subtree=\"{twofold}\" by dn.exact=\"{service}\" write by * none"),
        ];
        if link {
            rules.extend([
                format!(
                    "to dn.subtree=\"{people}\" attrs=objectClass val=oathTOTPUser \
                     by dn.exact=\"{service}\" write by * read"
                ),
                format!(
                    "to dn.subtree=\"{people}\" attrs=oathTOTPToken \
                     by dn.exact=\"{service}\" write by * read"
                ),
            ]);
        }
        rules.extend([
            format!("to dn.subtree=\"{people}\" by * read"),
            format!("to dn.subtree=\"ou=groups,{BASE}\" by * read"),
            format!("to dn.subtree=\"ou=services,{BASE}\" by self read by * none"),
            format!("to dn.base=\"{BASE}\" by * read"),
            "to * by * none".to_owned(),
        ]);
        rules
    }

    /// Gives the service account the writes `link_oath_users` needs on people entries, or
    /// takes them away (the ACL replaced in cn=config, as the admin): a site that did not
    /// grant them.
    pub fn set_link_access(&self, allowed: bool) -> io::Result<()> {
        let mut l = String::from(
            "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n",
        );
        for (i, rule) in self.access_rules(allowed).iter().enumerate() {
            let _ = writeln!(l, "olcAccess: {{{i}}}{rule}");
        }
        self.ldapmodify(&l)
    }

    /// A test CA and a certificate for 127.0.0.1 and localhost signed by it, in `tls/`.
    fn make_certificates(&self) -> io::Result<()> {
        let tls = self.path("tls");
        std::fs::create_dir(&tls)?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let openssl = |args: &[&str]| -> io::Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()?;
            check("openssl", &out)
        };
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=twofold test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca)?;
        let mut req = vec!["req", "-nodes"];
        req.extend(ec);
        req.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&req)?;
        std::fs::write(
            tls.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ])
    }

    /// The organisational units, `ou=accounts` and `ou=params` under `ou=twofold`, and the
    /// service account `cn=twofold,ou=services` with its password.
    fn add_base_entries(&self) -> io::Result<()> {
        let mut l = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
        );
        for ou in ["people", "groups", "services", "twofold"] {
            let _ = write!(
                l,
                "dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
            );
        }
        let twofold = self.twofold_base();
        for ou in ["accounts", "params"] {
            let _ = write!(
                l,
                "dn: ou={ou},{twofold}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
            );
        }
        let _ = write!(
            l,
            "dn: {}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
             cn: twofold\ndescription: what twofold hosts bind as\nuserPassword: {}\n",
            self.service_dn(),
            ssha(&self.service_password, self.dir.path())?
        );
        self.ldapadd(&l)
    }

    /// Stops the daemon (SIGTERM, then waits): the directory is unreachable until
    /// [`Slapd::start_again`]. Its data and ports are kept.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.process.take() {
            Some(p) => p.stop(Duration::from_secs(20)),
            None => Ok(()),
        }
    }

    /// Starts the daemon again on the same data, socket and ports (after [`Slapd::stop`]),
    /// and waits until it answers (`ldapsearch -x -H ldap://… -b "" -s base`, bound as the
    /// admin). Also what [`Slapd::start`] uses.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let mut urls = format!("{} {}", self.ldapi_url(), self.ldap_url());
        if let Some(ldaps) = self.ldaps_url() {
            urls.push(' ');
            urls.push_str(&ldaps);
        }
        let config = self.path("slapd.d");
        let args: [&OsStr; 6] = [
            OsStr::new("slapd"),
            OsStr::new("-d"),
            OsStr::new("stats"),
            OsStr::new("-F"),
            config.as_os_str(),
            OsStr::new("-h"),
        ];
        let mut all: Vec<&OsStr> = args.to_vec();
        all.push(OsStr::new(&urls));
        let mut process = Watched::spawn("", &all, &self.path("slapd.log"), false)?;
        let t = Instant::now();
        let url = self.ldap_url();
        loop {
            // Answers on the port, as this directory's admin: not some other server there.
            let answered = self
                .tool(
                    "ldapsearch",
                    &[
                        "-x",
                        "-H",
                        &url,
                        "-D",
                        &self.admin_dn(),
                        "-w",
                        &self.admin_password,
                        "-o",
                        "nettimeout=2",
                        "-b",
                        "",
                        "-s",
                        "base",
                        "namingContexts",
                    ],
                    None,
                )
                .is_ok_and(|out| out.status.success());
            if answered && process.exited().is_none() {
                break;
            }
            if let Some(status) = process.exited() {
                return Err(io::Error::other(format!(
                    "slapd ended ({status}): {}",
                    self.log()
                )));
            }
            if t.elapsed() > START_TIMEOUT {
                let _ = process.stop(Duration::from_secs(5));
                return Err(io::Error::other(format!(
                    "slapd did not answer within {START_TIMEOUT:?}: {}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
        Ok(())
    }

    /// Whether the daemon was started and has not ended.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// What slapd wrote (`-d stats`): its log, from every start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("slapd.log")).unwrap_or_default()
    }

    /// The temporary directory (configuration, data, socket, certificates, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ldapi://` on the socket in the temporary directory (SASL EXTERNAL as root is the admin).
    pub fn ldapi_url(&self) -> String {
        let socket = self.path("ldapi");
        let mut url = String::from("ldapi://");
        for b in socket.as_os_str().as_encoded_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                url.push(char::from(*b));
            } else {
                let _ = write!(url, "%{b:02X}");
            }
        }
        url
    }

    /// `ldap://127.0.0.1:PORT/` (StartTLS too with [`Options::tls`]).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT/` with [`Options::tls`].
    pub fn ldaps_url(&self) -> Option<String> {
        self.ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}/"))
    }

    /// The test CA's certificate (PEM) with [`Options::tls`].
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ldaps_port.map(|_| self.path("tls/ca.pem"))
    }

    /// The database's suffix, `dc=example,dc=org`.
    pub fn base(&self) -> &'static str {
        BASE
    }

    /// `ou=twofold,dc=example,dc=org`: twofold's subtree (`ou=accounts` and `ou=params` under it).
    pub fn twofold_base(&self) -> String {
        format!("ou=twofold,{BASE}")
    }

    /// `ou=people,dc=example,dc=org`: the users of [`Slapd::add_user`].
    pub fn people_base(&self) -> String {
        format!("ou=people,{BASE}")
    }

    /// `ou=groups,dc=example,dc=org`: the groups of [`Slapd::add_group`].
    pub fn groups_base(&self) -> String {
        format!("ou=groups,{BASE}")
    }

    /// The database's root DN, `cn=admin,dc=example,dc=org`.
    pub fn admin_dn(&self) -> String {
        format!("cn=admin,{BASE}")
    }

    /// The admin's password (random, per fixture or pair).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// What twofold hosts bind as: `cn=twofold,ou=services,dc=example,dc=org`.
    pub fn service_dn(&self) -> String {
        format!("cn=twofold,ou=services,{BASE}")
    }

    /// The service account's password (random, per fixture or pair).
    pub fn service_password(&self) -> &str {
        &self.service_password
    }

    /// An ldap-utils command as the admin: SASL EXTERNAL over the ldapi socket, which maps
    /// uid 0 to [`Slapd::admin_dn`]. Fails with what the tool printed.
    fn admin_tool(&self, tool: &str, args: &[&str], input: Option<&str>) -> io::Result<String> {
        let url = self.ldapi_url();
        let mut all = vec!["-Q", "-Y", "EXTERNAL", "-H", &url];
        all.extend_from_slice(args);
        let out = self.tool(tool, &all, input)?;
        check(tool, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs an ldap-utils `tool` with `args`, `input` on its stdin, trusting the test CA.
    fn tool(&self, tool: &str, args: &[&str], input: Option<&str>) -> io::Result<Output> {
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = self.ca_file() {
            cmd.env("LDAPTLS_CACERT", ca)
                .env("LDAPTLS_REQCERT", "demand");
        }
        let mut child = cmd.spawn()?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            stdin.write_all(input.as_bytes())?;
        }
        child.wait_with_output()
    }

    /// An ldap-utils `tool` (`ldapsearch`, `ldapwhoami`, `ldapmodify`, …) on [`Slapd::ldap_url`]
    /// with a simple bind as `dn` with `password` (`-x -D dn -w password`), `args` after
    /// those and `input` on its stdin; an empty `dn` and `password` bind anonymously. Its
    /// output whatever the result: tests check refusals.
    pub fn tool_as(
        &self,
        tool: &str,
        dn: &str,
        password: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> io::Result<Output> {
        let url = self.ldap_url();
        let mut all = vec!["-x", "-H", &url, "-D", dn, "-w", password];
        all.extend_from_slice(args);
        self.tool(tool, &all, input)
    }

    /// `ldapadd` of `ldif` as the admin.
    pub fn ldapadd(&self, ldif: &str) -> io::Result<()> {
        self.admin_tool("ldapadd", &[], Some(ldif)).map(|_| ())
    }

    /// `ldapmodify` of `ldif` (with `changetype:` lines) as the admin.
    pub fn ldapmodify(&self, ldif: &str) -> io::Result<()> {
        self.admin_tool("ldapmodify", &[], Some(ldif)).map(|_| ())
    }

    /// `ldapsearch -LLL` under `base` (subtree) for `filter`, asking for `attrs` (all user
    /// attributes when empty), as the admin: its LDIF, lines unwrapped.
    pub fn ldapsearch(&self, base: &str, filter: &str, attrs: &[&str]) -> io::Result<String> {
        let mut args = vec!["-LLL", "-o", "ldif_wrap=no", "-b", base, filter];
        args.extend_from_slice(attrs);
        self.admin_tool("ldapsearch", &args, None)
    }

    /// A user `uid=NAME,ou=people`: posixAccount, inetOrgPerson and shadowAccount, uid and
    /// gid numbers as given, home `/home/NAME` (not created), shell `/bin/sh`, `password`
    /// stored as `{SSHA}`. Returns its DN.
    pub fn add_user(&self, name: &str, uid: u32, gid: u32, password: &str) -> io::Result<String> {
        let dn = format!("uid={name},{}", self.people_base());
        let hash = ssha(password, self.dir.path())?;
        self.ldapadd(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             objectClass: shadowAccount\nuid: {name}\ncn: {name}\nsn: {name}\n\
             uidNumber: {uid}\ngidNumber: {gid}\nhomeDirectory: /home/{name}\n\
             loginShell: /bin/sh\nuserPassword: {hash}\n"
        ))?;
        Ok(dn)
    }

    /// A group `cn=NAME,ou=groups`: posixGroup with gid number `gid` and a `memberUid` per
    /// member. Returns its DN.
    pub fn add_group(&self, name: &str, gid: u32, members: &[&str]) -> io::Result<String> {
        let dn = format!("cn={name},{}", self.groups_base());
        let mut l = format!("dn: {dn}\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {gid}\n");
        for m in members {
            let _ = writeln!(l, "memberUid: {m}");
        }
        self.ldapadd(&l)?;
        Ok(dn)
    }

    /// Waits until this server holds `attr: value` in the entry `dn` (polled every 10 ms as
    /// the admin), at most `timeout`: how long it took.
    pub fn wait_replicated(
        &self,
        dn: &str,
        attr: &str,
        value: &str,
        timeout: Duration,
    ) -> io::Result<Duration> {
        let t = Instant::now();
        let filter = format!("({attr}={})", filter_escape(value));
        let url = self.ldapi_url();
        loop {
            let out = self.tool(
                "ldapsearch",
                &[
                    "-Q", "-Y", "EXTERNAL", "-H", &url, "-LLL", "-s", "base", "-b", dn, &filter,
                    "1.1",
                ],
                None,
            )?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("dn:") {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{dn} has no {attr}: {value} after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A private mount namespace whose user database is a [`Slapd`]: programs run there through
/// [`NssHost::command`] see its users and groups (nsswitch `files ldap` through nslcd), and
/// the host sees nothing of it.
///
/// A holder, `unshare --mount --propagation private sh …`, bind-mounts a generated
/// `nsswitch.conf` (passwd, group and shadow `files ldap`, the rest as on the host) over
/// `/etc/nsswitch.conf` and a generated `nslcd.conf` over `/etc/nslcd.conf`, and puts a tmpfs
/// over `/run` holding the host's entries bound back, except `nscd` (a host nscd would answer
/// for the host's view), `nslcd` (made afresh, owned by user nslcd: libnss-ldapd talks to the
/// fixed `/run/nslcd/socket`) and `mount`. Then it runs `nslcd -d` (its log in the temporary
/// directory) until dropped. Nothing is created, changed or mounted on the host: mounts stay
/// in the namespace, which ends with its last process.
pub struct NssHost {
    dir: tempfile::TempDir,
    holder: Option<Watched>,
    pid: u32,
}

impl NssHost {
    /// Starts the namespace and nslcd (anonymous binds to `slapd`'s `ldap://` URL, the
    /// `ou=people` and `ou=groups` bases), and waits for nslcd's socket.
    pub fn start(slapd: &Slapd) -> io::Result<NssHost> {
        let dir = tempfile::Builder::new().prefix("twofold-nss.").tempdir()?;
        let host = std::fs::read_to_string("/etc/nsswitch.conf")?;
        let mut nsswitch =
            String::from("# twofold system tests: the directory's users (NssHost)\n");
        let mut seen = [false; 3];
        for line in host.lines() {
            let db = line.split(':').next().unwrap_or("").trim();
            match ["passwd", "group", "shadow"].iter().position(|d| *d == db) {
                Some(i) if line.contains(':') => {
                    if let Some(s) = seen.get_mut(i) {
                        *s = true;
                    }
                    let _ = writeln!(nsswitch, "{db}: files ldap");
                }
                _ => {
                    nsswitch.push_str(line);
                    nsswitch.push('\n');
                }
            }
        }
        for (db, seen) in ["passwd", "group", "shadow"].iter().zip(seen) {
            if !seen {
                let _ = writeln!(nsswitch, "{db}: files ldap");
            }
        }
        write_mode(&dir.path().join("nsswitch.conf"), &nsswitch, 0o644)?;
        let people = slapd.people_base();
        let groups = slapd.groups_base();
        // Short reconnection delays: tests stop and restart the directory.
        let nslcd = format!(
            "# twofold system tests (NssHost)\nuid nslcd\ngid nslcd\nuri {}\nbase {BASE}\n\
             base passwd {people}\nbase group {groups}\nbase shadow {people}\n\
             bind_timelimit 3\ntimelimit 5\nreconnect_sleeptime 1\nreconnect_retrytime 2\n",
            slapd.ldap_url()
        );
        write_mode(&dir.path().join("nslcd.conf"), &nslcd, 0o600)?;
        std::fs::create_dir(dir.path().join("oldrun"))?;
        let prelude = r#"set -e
T=$1; shift
mount --bind "$T/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$T/nslcd.conf" /etc/nslcd.conf
mount --rbind /run "$T/oldrun"
mount -t tmpfs -o mode=0755,size=16m twofold-run /run
for p in "$T"/oldrun/* "$T"/oldrun/.[!.]*; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  n=${p##*/}
  case $n in nslcd|nscd|mount) continue ;; esac
  if [ -L "$p" ]; then ln -s "$(readlink "$p")" "/run/$n"
  elif [ -d "$p" ]; then mkdir -p "/run/$n"; mount --rbind "$p" "/run/$n"
  else [ -e "/run/$n" ] || : > "/run/$n"; mount --bind "$p" "/run/$n"; fi
done
umount -l "$T/oldrun"
mkdir -m 0755 /run/nslcd
chown nslcd:nslcd /run/nslcd
set +e"#;
        let args = [
            dir.path().as_os_str(),
            OsStr::new("nslcd"),
            OsStr::new("-d"),
        ];
        let mut holder = Watched::spawn(prelude, &args, &dir.path().join("nslcd.log"), true)?;
        let pid = holder.child.id();
        let socket = PathBuf::from(format!("/proc/{pid}/root/run/nslcd/socket"));
        let t = Instant::now();
        let log = |dir: &Path| std::fs::read_to_string(dir.join("nslcd.log")).unwrap_or_default();
        while !socket.exists() {
            if let Some(status) = holder.exited() {
                return Err(io::Error::other(format!(
                    "the namespace's holder ended ({status}): {}",
                    log(dir.path())
                )));
            }
            if t.elapsed() > START_TIMEOUT {
                let _ = holder.stop(Duration::from_secs(5));
                return Err(io::Error::other(format!(
                    "nslcd made no socket within {START_TIMEOUT:?}: {}",
                    log(dir.path())
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NssHost {
            dir,
            holder: Some(holder),
            pid,
        })
    }

    /// `program` run inside the namespace: `nsenter --target PID --mount -- program`; add
    /// its arguments with [`Command::arg`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &self.pid.to_string(), "--mount", "--"])
            .arg(program);
        cmd
    }

    /// The holder's pid (the namespace is `/proc/PID/ns/mnt`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the holder and `nslcd -d` wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nslcd.log")).unwrap_or_default()
    }

    /// Stops nslcd and the holder: the namespace and its mounts end with them.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.holder.take() {
            Some(h) => h.stop(Duration::from_secs(10)),
            None => Ok(()),
        }
    }
}

impl Drop for NssHost {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Fails with the command's output unless it succeeded.
fn check(what: &str, out: &Output) -> io::Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// An `{SSHA}` hash of `password` by `slappasswd`, the password passed in a file in `dir`
/// (not on a command line).
fn ssha(password: &str, dir: &Path) -> io::Result<String> {
    let file = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(file.path(), password)?;
    let out = Command::new("slappasswd")
        .args(["-h", "{SSHA}", "-T"])
        .arg(file.path())
        .output()?;
    check("slappasswd", &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// 24 random hex digits from the kernel.
fn random_password() -> io::Result<String> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// A free TCP port on 127.0.0.1 (bound and released: slapd binds it soon after), never one
/// this process handed out before: the tests' fixtures start concurrently.
fn free_port() -> io::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .map_err(|_| io::Error::other("free_port: poisoned"))?;
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    Err(io::Error::other("no free port"))
}

/// A schema LDIF file without its comments, ending with a blank line.
fn read_ldif(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut out: String =
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .fold(String::new(), |mut s, l| {
                s.push_str(l);
                s.push('\n');
                s
            });
    out.push('\n');
    Ok(out)
}

/// Writes `text` to a new file `path` with `mode`.
fn write_mode(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?
        .write_all(text.as_bytes())
}

/// `value` escaped for an LDAP filter (RFC 4515).
fn filter_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => {
                let _ = write!(out, "\\{:02x}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out
}
