//! Module arguments: `policy=PATH state=DIR verify_socket=PATH on_error=deny|allow debug`.
//! Anything else is an error, and the module then fails closed.

use std::path::PathBuf;

/// What to do when the policy or the store cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse the login (the default).
    Deny,
    /// Let the rest of the stack decide (PAM_IGNORE), logged every time it applies.
    Allow,
}

/// Parsed module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The policy file (drop-ins from `policy.d/` beside it).
    pub policy: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// The verification service's socket, asked when this process cannot use the store itself.
    pub verify_socket: PathBuf,
    /// Behaviour on a broken policy or store.
    pub on_error: OnError,
    /// Log every step.
    pub debug: bool,
    /// Debug builds only: panic inside the entry point, so that a test can show the panic is
    /// caught at the FFI boundary with the statically linked unwinder (see `build.rs`).
    #[cfg(debug_assertions)]
    pub test_panic: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            policy: twofold_policy::config::DEFAULT_POLICY.into(),
            state: twofold_policy::store::DEFAULT_STATE_DIR.into(),
            verify_socket: twofold_policy::verify::DEFAULT_SOCKET.into(),
            on_error: OnError::Deny,
            debug: false,
            #[cfg(debug_assertions)]
            test_panic: false,
        }
    }
}

/// Parses the arguments of the PAM configuration line.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<Args, String> {
    let mut out = Args::default();
    for raw in args {
        let arg =
            std::str::from_utf8(raw).map_err(|_| "a module argument is not UTF-8".to_owned())?;
        match arg.split_once('=') {
            Some(("policy", p)) if p.starts_with('/') => out.policy = p.into(),
            Some(("state", p)) if p.starts_with('/') => out.state = p.into(),
            Some(("verify_socket", p)) if p.starts_with('/') => out.verify_socket = p.into(),
            Some(("policy" | "state" | "verify_socket", p)) => {
                return Err(format!("{arg:?}: the path {p:?} must be absolute"));
            }
            Some(("on_error", "deny")) => out.on_error = OnError::Deny,
            Some(("on_error", "allow")) => out.on_error = OnError::Allow,
            Some(("on_error", v)) => return Err(format!("on_error={v:?}: expected deny or allow")),
            None if arg == "debug" => out.debug = true,
            #[cfg(debug_assertions)]
            None if arg == "test_panic" => out.test_panic = true,
            _ => {
                return Err(format!(
                    "unknown module argument {arg:?} (known: policy=PATH, state=DIR, verify_socket=PATH, on_error=deny|allow, debug)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let a = parse([
            b"policy=/p.toml".as_slice(),
            b"state=/s",
            b"on_error=allow",
            b"debug",
        ])
        .unwrap();
        assert_eq!(a.policy, PathBuf::from("/p.toml"));
        assert_eq!(a.state, PathBuf::from("/s"));
        assert_eq!(a.on_error, OnError::Allow);
        assert!(a.debug);
        assert_eq!(parse([]).unwrap(), Args::default());
        assert!(parse([b"nullok".as_slice()]).is_err());
        assert!(parse([b"policy=relative.toml".as_slice()]).is_err());
        assert!(parse([b"on_error=maybe".as_slice()]).is_err());
        assert!(parse([b"\xff".as_slice()]).is_err());
    }
}
