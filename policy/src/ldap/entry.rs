//! What searches return ([`Entry`]) and what modifications send ([`Mod`]): values are wiped
//! from memory when dropped (entries carry TOTP secrets) and never printed by `Debug`.

use std::fmt;

use zeroize::Zeroize;

/// An entry returned by a search: its DN and attributes, each with its values.
///
/// Attribute names are as the server sent them; [`Entry::get`] looks them up ignoring ASCII
/// case, as LDAP compares attribute descriptions. Every value is wiped when the entry is
/// dropped, and `Debug` shows attribute names and value counts only.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's distinguished name, as the server sent it.
    pub dn: String,
    /// The attributes, in the server's order, each with its values.
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// The values of attribute `name` (ASCII case ignored), if the entry has it.
    pub fn get(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.attrs
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of attribute `name` as text, if the entry has it and it is UTF-8.
    pub fn first_str(&self, name: &str) -> Option<&str> {
        self.get(name)?
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.dn.zeroize();
        for (name, values) in &mut self.attrs {
            name.zeroize();
            for v in values.iter_mut() {
                v.zeroize();
            }
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Entry");
        d.field("dn", &self.dn);
        d.field("attrs", &Redacted(&self.attrs));
        d.finish()
    }
}

/// Attribute names with the number of their values, never the values.
struct Redacted<'a>(&'a [(String, Vec<Vec<u8>>)]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (a, v) in self.0 {
            m.entry(a, &format_args!("<{} value(s)>", v.len()));
        }
        m.finish()
    }
}

/// What a [`Mod`] does to its attribute (RFC 4511 §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModOp {
    /// Adds the values; the server refuses one that is already there (attributeOrValueExists).
    Add,
    /// Deletes the values given, or the whole attribute if none are; the server refuses a value
    /// that is not there (noSuchAttribute).
    Delete,
    /// Replaces every value with the ones given (none: removes the attribute).
    Replace,
}

impl ModOp {
    pub(crate) fn code(self) -> i64 {
        match self {
            ModOp::Add => 0,
            ModOp::Delete => 1,
            ModOp::Replace => 2,
        }
    }
}

/// One change of a modify request. The changes of one request are applied atomically by the
/// server, all or none: `Delete` of the old value with `Add` of the new one is a
/// compare-and-swap, which fails with [`is_conflict`](super::LdapError::is_conflict) when
/// another writer changed the value first.
///
/// Values are wiped when dropped and never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Mod {
    /// What to do.
    pub op: ModOp,
    /// The attribute changed.
    pub attr: String,
    /// The values added, deleted or put in place.
    pub values: Vec<Vec<u8>>,
}

impl Mod {
    /// Adds `values` to `attr`.
    pub fn add(attr: &str, values: Vec<Vec<u8>>) -> Mod {
        Mod {
            op: ModOp::Add,
            attr: attr.to_owned(),
            values,
        }
    }

    /// Deletes `values` from `attr` (all of `attr` if `values` is empty).
    pub fn delete(attr: &str, values: Vec<Vec<u8>>) -> Mod {
        Mod {
            op: ModOp::Delete,
            attr: attr.to_owned(),
            values,
        }
    }

    /// Replaces the values of `attr` with `values`.
    pub fn replace(attr: &str, values: Vec<Vec<u8>>) -> Mod {
        Mod {
            op: ModOp::Replace,
            attr: attr.to_owned(),
            values,
        }
    }
}

impl Drop for Mod {
    fn drop(&mut self) {
        for v in self.values.iter_mut() {
            v.zeroize();
        }
    }
}

impl fmt::Debug for Mod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mod")
            .field("op", &self.op)
            .field("attr", &self.attr)
            .field("values", &format_args!("<{} value(s)>", self.values.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            attrs: vec![
                ("uid".into(), vec![b"alice".to_vec()]),
                ("oathSecret".into(), vec![b"S3CR3T".to_vec()]),
                ("bin".into(), vec![vec![0xff, 0xfe]]),
            ],
        }
    }

    #[test]
    fn get_ignores_case() {
        let e = entry();
        assert_eq!(e.get("OATHSECRET"), Some(&[b"S3CR3T".to_vec()][..]));
        assert_eq!(e.first_str("UiD"), Some("alice"));
        assert_eq!(e.first_str("bin"), None);
        assert_eq!(e.get("missing"), None);
        assert_eq!(e.first_str("missing"), None);
    }

    #[test]
    fn debug_hides_values() {
        let s = format!("{:?}", entry());
        assert!(s.contains("oathSecret"), "{s}");
        assert!(!s.contains("S3CR3T"), "{s}");
        let m = Mod::replace("oathSecret", vec![b"S3CR3T".to_vec()]);
        let s = format!("{m:?}");
        assert!(s.contains("oathSecret") && !s.contains("S3CR3T"), "{s}");
    }
}
