//! TOTP against the RFC 6238 vectors (data file) and against `oathtool`, an independent
//! implementation, for fresh random secrets with every algorithm and digit count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::path::Path;
use std::process::Command;

use twofold_policy::totp::{self, Algorithm, Params, Secret, Verdict};

#[test]
fn rfc6238_vectors() {
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc6238.txt"),
    )
    .unwrap();
    let mut n = 0;
    for line in data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [alg, secret, time, code] = f[..] else {
            panic!("bad line {line}")
        };
        let params = Params {
            algorithm: alg.parse().unwrap(),
            digits: 8,
            period: 30,
        };
        let secret = Secret::from_bytes(secret.as_bytes()).unwrap();
        let time: u64 = time.parse().unwrap();
        assert_eq!(
            totp::code_at(&secret, params, time).unwrap().as_str(),
            code,
            "{line}"
        );
        // And the verifier accepts exactly that step.
        assert_eq!(
            totp::verify(&secret, params, code, time, 1, None).unwrap(),
            Verdict::Accepted { step: time / 30 },
            "{line}"
        );
        n += 1;
    }
    assert_eq!(n, 18);
}

fn oathtool(secret: &Secret, p: Params, time: u64) -> String {
    let out = Command::new("oathtool")
        .arg(format!("--totp={}", p.algorithm))
        .arg(format!("--digits={}", p.digits))
        .arg(format!("--time-step-size={}s", p.period))
        .arg(format!("--now=@{time}"))
        .arg("--base32")
        .arg(secret.to_base32().as_str())
        .output()
        .expect("oathtool must be installed (make test installs it: apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn fresh_secrets_agree_with_oathtool() {
    let now = twofold_policy::time::now();
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        for digits in [6, 8] {
            for period in [30, 60] {
                let secret = Secret::generate().unwrap();
                let p = Params {
                    algorithm,
                    digits,
                    period,
                };
                for time in [now, now + 12_345, 59, 4_102_444_800] {
                    let theirs = oathtool(&secret, p, time);
                    assert_eq!(
                        totp::code_at(&secret, p, time).unwrap().as_str(),
                        theirs,
                        "{p:?} at {time}"
                    );
                    assert!(matches!(
                        totp::verify(&secret, p, &theirs, time, 1, None).unwrap(),
                        Verdict::Accepted { .. }
                    ));
                }
            }
        }
    }
}

#[test]
fn otpauth_uri_carries_the_secret_oathtool_uses() {
    let secret = Secret::generate().unwrap();
    let p = Params::default();
    let uri = totp::otpauth_uri(&secret, p, "twofold", "alice");
    let key = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let parsed = Secret::from_base32(key).unwrap();
    assert_eq!(
        oathtool(&parsed, p, 1_000_000_000),
        totp::code_at(&secret, p, 1_000_000_000).unwrap().as_str()
    );
}
