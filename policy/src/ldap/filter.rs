//! Search filters (RFC 4511 §4.5.1.7), built as values and encoded straight into BER: there is
//! no string form to parse, so a user name or any other value can never change a filter's
//! structure (no filter injection, nothing to escape).

use std::fmt;

use super::ber::{Element, Tag};

/// A search filter: `and`, `or`, `not`, equality and presence.
#[derive(Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every filter matches; `And(vec![])` is the absolute true filter of RFC 4526.
    And(Vec<Filter>),
    /// One filter at least matches; `Or(vec![])` is the absolute false filter of RFC 4526.
    Or(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
    /// `(attr=value)`: the attribute has this value, compared by the attribute's equality rule.
    /// The value is taken literally: `*`, `(`, `)`, `\` and NUL are plain bytes here.
    Equal(String, Vec<u8>),
    /// `(attr=*)`: the attribute is present.
    Present(String),
}

impl Filter {
    /// `(attr=value)`.
    pub fn eq(attr: &str, value: impl AsRef<[u8]>) -> Filter {
        Filter::Equal(attr.to_owned(), value.as_ref().to_vec())
    }

    /// `(attr=*)`.
    pub fn present(attr: &str) -> Filter {
        Filter::Present(attr.to_owned())
    }

    /// `(&…)`.
    pub fn and(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(filters.into_iter().collect())
    }

    /// `(|…)`.
    pub fn or(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(filters.into_iter().collect())
    }

    /// `(!…)`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Filter {
        Filter::Not(Box::new(filter))
    }

    /// The filter's BER element, borrowing its strings and values.
    pub(crate) fn to_ber(&self) -> Element<'_> {
        match self {
            Filter::And(fs) => Element::cons(
                Tag::context(0, true),
                fs.iter().map(Filter::to_ber).collect(),
            ),
            Filter::Or(fs) => Element::cons(
                Tag::context(1, true),
                fs.iter().map(Filter::to_ber).collect(),
            ),
            Filter::Not(f) => Element::cons(Tag::context(2, true), vec![f.to_ber()]),
            Filter::Equal(attr, value) => Element::cons(
                Tag::context(3, true),
                vec![Element::octets(attr.as_bytes()), Element::octets(value)],
            ),
            Filter::Present(attr) => Element::bytes(Tag::context(7, false), attr.as_bytes()),
        }
    }
}

/// The string form of RFC 4515 with every value left out (`(uid=…)`): values are never
/// printed, since they may be secrets.
impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(fs) | Filter::Or(fs) => {
                f.write_str(if matches!(self, Filter::And(_)) {
                    "(&"
                } else {
                    "(|"
                })?;
                for x in fs {
                    write!(f, "{x:?}")?;
                }
                f.write_str(")")
            }
            Filter::Not(x) => write!(f, "(!{x:?})"),
            Filter::Equal(attr, _) => write!(f, "({attr}=…)"),
            Filter::Present(attr) => write!(f, "({attr}=*)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_openldap() {
        // `ldapsearch -d 3 '(&(objectClass=person)(uid=al\2a))'`: the filter's bytes.
        let f = Filter::and([
            Filter::eq("objectClass", "person"),
            Filter::eq("uid", "al*"),
        ]);
        let expected: &[u8] = b"\xa0\x23\xa3\x15\x04\x0bobjectClass\x04\x06person\
                                \xa3\x0a\x04\x03uid\x04\x03al*";
        assert_eq!(&f.to_ber().encode()[..], expected);
        // `ldapsearch -d 3 '(|(!(cn=x))(objectClass=*))'`.
        let f = Filter::or([
            Filter::not(Filter::eq("cn", "x")),
            Filter::present("objectClass"),
        ]);
        let expected: &[u8] = b"\xa1\x18\xa2\x09\xa3\x07\x04\x02cn\x04\x01x\x87\x0bobjectClass";
        assert_eq!(&f.to_ber().encode()[..], expected);
    }

    #[test]
    fn debug_hides_values() {
        let f = Filter::and([
            Filter::eq("oathSecret", "TOPSECRET"),
            Filter::not(Filter::present("x")),
        ]);
        let s = format!("{f:?}");
        assert_eq!(s, "(&(oathSecret=…)(!(x=*)))");
    }

    #[test]
    fn empty_and_or() {
        assert_eq!(&Filter::and([]).to_ber().encode()[..], b"\xa0\x00");
        assert_eq!(&Filter::or([]).to_ber().encode()[..], b"\xa1\x00");
    }
}
