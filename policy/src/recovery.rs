//! Recovery codes: generated once, shown once, stored only as salted hashes, each accepted once.
//!
//! A code is 12 characters of Crockford base32 (60 bits), shown as `abcd-efgh-jkmn`. Typing is
//! forgiving: case, spaces and dashes are ignored, and `o`, `i`, `l` read as `0`, `1`, `1`.
//! A stored hash is `sha256$<salt, base64>$<SHA-256(salt ‖ code), base64>` with a 16-byte salt.
//! Whoever can read the record can read the TOTP secret too; the hashes keep codes out of
//! backups and logs, and 60 bits keep each code out of reach of brute force.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::encoding::{base64_decode_array, base64_encode};
use crate::totp::TotpError;

/// Characters of a code.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters per code.
pub const CODE_LEN: usize = 12;
const SALT_LEN: usize = 16;

/// Freshly generated codes (to show once) and their hashes (to store).
pub struct Generated {
    /// The codes as shown to the user, `abcd-efgh-jkmn`. Wiped when dropped.
    pub codes: Vec<Zeroizing<String>>,
    /// The hashes to store.
    pub hashes: Vec<String>,
}

/// Generates `n` codes.
pub fn generate(n: u32) -> Result<Generated, TotpError> {
    let mut codes = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..n {
        let mut raw = Zeroizing::new([0u8; CODE_LEN]);
        getrandom::fill(raw.as_mut()).map_err(|e| TotpError::Random(e.to_string()))?;
        let plain: Zeroizing<String> = Zeroizing::new(
            raw.iter()
                .map(|b| char::from(ALPHABET.get(usize::from(b & 31)).copied().unwrap_or(b'0')))
                .collect(),
        );
        let mut shown = Zeroizing::new(String::with_capacity(CODE_LEN + 2));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                shown.push('-');
            }
            shown.push(c);
        }
        hashes.push(hash(&plain)?);
        codes.push(shown);
    }
    Ok(Generated { codes, hashes })
}

/// Normalizes typed input to the 12 code characters, or `None` when it cannot be a code.
pub fn normalize(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > 64 {
        return None;
    }
    let mut out = Zeroizing::new(String::with_capacity(CODE_LEN));
    for c in input.chars() {
        let c = match c.to_ascii_lowercase() {
            ' ' | '-' | '\t' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == CODE_LEN).then_some(out)
}

fn digest(salt: &[u8], code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().into()
}

fn hash(code: &str) -> Result<String, TotpError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| TotpError::Random(e.to_string()))?;
    Ok(format!(
        "sha256${}${}",
        base64_encode(&salt),
        base64_encode(&digest(&salt, code))
    ))
}

/// Whether a stored hash is well formed (records with a malformed one are refused on load).
pub fn hash_is_well_formed(stored: &str) -> bool {
    parse_hash(stored).is_some()
}

fn parse_hash(stored: &str) -> Option<([u8; SALT_LEN], [u8; 32])> {
    let mut parts = stored.split('$');
    if parts.next()? != "sha256" {
        return None;
    }
    let salt = base64_decode_array::<SALT_LEN>(parts.next()?.as_bytes()).ok()?;
    let sum = base64_decode_array::<32>(parts.next()?.as_bytes()).ok()?;
    parts.next().is_none().then_some((salt, sum))
}

/// The index of the stored hash that `input` matches, if any. Every hash is checked, in
/// constant time each, whatever matched.
pub fn find(hashes: &[String], input: &str) -> Option<usize> {
    let code = normalize(input)?;
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        let Some((salt, sum)) = parse_hash(stored) else {
            continue;
        };
        if bool::from(digest(&salt, &code).ct_eq(&sum)) {
            found = found.or(Some(i));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_match_once_each() -> Result<(), TotpError> {
        let g = generate(10)?;
        assert_eq!(g.codes.len(), 10);
        assert_eq!(g.hashes.len(), 10);
        for (i, c) in g.codes.iter().enumerate() {
            assert_eq!(c.len(), 14);
            assert_eq!(find(&g.hashes, c), Some(i));
            assert_eq!(
                find(&g.hashes, &c.to_uppercase().replace('-', " ")),
                Some(i)
            );
            assert!(!g.hashes.iter().any(|h| h.contains(c.as_str())));
        }
        assert_eq!(find(&g.hashes, "0000-0000-0000"), None);
        assert_eq!(find(&g.hashes, "123456"), None);
        assert_eq!(find(&g.hashes, &"a".repeat(100_000)), None);
        Ok(())
    }

    #[test]
    fn lookalikes_are_forgiven() {
        assert_eq!(
            normalize("OIL0-abcd-efgh").as_deref().map(String::as_str),
            Some("0110abcdefgh")
        );
        assert!(normalize("uuuu-uuuu-uuuu").is_none());
    }
}
