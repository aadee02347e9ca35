//! Distinguished names compared as a server compares them (RFC 4514 string form): the same
//! entry may come back written otherwise than it was asked for (`ou=twofold, dc=example` is
//! sent back as `ou=twofold,dc=example`; `\2C` and `\,` are one character; `OU` is `ou`).

/// One attribute value assertion of an RDN: the type (ASCII lowercase) and the value
/// (unescaped, ASCII lowercase: the naming attributes of twofold's entries, `uid`, `cn`, `ou`,
/// `dc`, match without regard to case).
type Ava = (String, Vec<u8>);

/// The RDNs of `dn`, most specific first, each a sorted list of its AVAs; `None` when `dn`
/// is not a DN in the string form of RFC 4514.
pub fn normalize(dn: &str) -> Option<Vec<Vec<Ava>>> {
    let mut rdns: Vec<Vec<Ava>> = Vec::new();
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    let mut rdn: Vec<Ava> = Vec::new();
    let mut kind = String::new();
    let mut value: Vec<u8> = Vec::new();
    // Bytes of the value that were escaped (never trimmed), by position.
    let mut escaped_to = 0usize;
    let mut in_value = false;
    let bytes = dn.as_bytes();
    let mut i = 0;
    let end_ava =
        |kind: &mut String, value: &mut Vec<u8>, escaped_to: usize, rdn: &mut Vec<Ava>| {
            let k = kind.trim().to_ascii_lowercase();
            if k.is_empty() {
                return false;
            }
            // Unescaped spaces around the value are not part of it.
            let mut v = std::mem::take(value);
            while v.len() > escaped_to && v.last() == Some(&b' ') {
                v.pop();
            }
            v.make_ascii_lowercase();
            rdn.push((k, v));
            kind.clear();
            true
        };
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if !in_value {
            match b {
                b'=' => {
                    in_value = true;
                    escaped_to = 0;
                    // Leading spaces of the value are not part of it.
                    while bytes.get(i) == Some(&b' ') {
                        i += 1;
                    }
                }
                b',' | b'+' | b'\\' => return None,
                _ => kind.push(char::from(b)),
            }
            continue;
        }
        match b {
            b'\\' => {
                let next = *bytes.get(i)?;
                let hex = |c: u8| char::from(c).to_digit(16);
                if let (Some(h), Some(l)) = (hex(next), bytes.get(i + 1).and_then(|c| hex(*c))) {
                    value.push(u8::try_from(h * 16 + l).ok()?);
                    i += 2;
                } else {
                    value.push(next);
                    i += 1;
                }
                escaped_to = value.len();
            }
            b',' | b'+' => {
                if !end_ava(&mut kind, &mut value, escaped_to, &mut rdn) {
                    return None;
                }
                in_value = false;
                if b == b',' {
                    rdn.sort();
                    rdns.push(std::mem::take(&mut rdn));
                }
                // Spaces before the next type.
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            _ => value.push(b),
        }
    }
    if !in_value || !end_ava(&mut kind, &mut value, escaped_to, &mut rdn) {
        return None;
    }
    rdn.sort();
    rdns.push(rdn);
    Some(rdns)
}

/// Whether `a` and `b` name the same entry (see [`normalize`]); never for a string that is
/// not a DN.
pub fn dn_eq(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_entry_written_otherwise() {
        let plain = "uid=alice,ou=accounts,ou=twofold,dc=example,dc=org";
        for same in [
            plain,
            "uid=alice,ou=accounts,ou=twofold, dc=example, dc=org",
            "UID=Alice , OU=accounts,OU=TWOFOLD,DC=example,DC=org",
            "uid=\\61lice,ou=accounts,ou=twofold,dc=example,dc=org",
            "uid = alice,ou=accounts,ou=twofold,dc=example,dc=org",
        ] {
            assert!(dn_eq(plain, same), "{same}");
        }
        for other in [
            "uid=alice,ou=accounts,ou=twofold,dc=example",
            "uid=bob,ou=accounts,ou=twofold,dc=example,dc=org",
            "cn=1,uid=alice,ou=accounts,ou=twofold,dc=example,dc=org",
            "uid=alice\\,ou=accounts,ou=twofold,dc=example,dc=org",
            "uid=alice+cn=x,ou=accounts,ou=twofold,dc=example,dc=org",
            "uid=alice\\ ,ou=accounts,ou=twofold,dc=example,dc=org",
            "",
            "garbage",
            "uid=alice,,dc=org",
        ] {
            assert!(!dn_eq(plain, other), "{other}");
        }
        assert!(dn_eq("cn=a+sn=b,dc=x", "sn=b + cn=a,dc=x"));
        assert!(dn_eq("o=Acme\\, Inc,c=US", "o=Acme\\2C Inc,c=US"));
        assert!(!dn_eq("o=Acme\\, Inc,c=US", "o=Acme,Inc,c=US"));
        assert_eq!(normalize("uid=a\\"), None);
        assert_eq!(normalize("=a"), None);
    }
}
