//! Log fields that cannot pass for other fields or other lines.
//!
//! Every log line of twofold (the PAM module, `twofold-verifyd`, `twofold-enrolld`) is a
//! prefix, then `key=value` fields separated by one space, then, after `: `, free text. A
//! value that anybody but twofold chose (a user name as typed, a PAM service name, a remote
//! host, a table name of the policy) goes through [`value`]:
//!
//! - written bare when it is non-empty, does not end in `:` and every character is printable
//!   ASCII other than space, `"`, `\` and `=`;
//! - otherwise in double quotes, with `\"` for `"`, `\\` for `\`, `\xNN` for an ASCII control
//!   character and `\u{N}` for any character beyond ASCII (so no line break, no look-alike
//!   space and no right-to-left mark reaches the log as itself).
//!
//! So a value ends at the first space outside quotes, and a quoted value at the first `"` not
//! preceded by `\`: whatever a caller sends, it stays inside its own field. The last field
//! before the free text ends in `:` (`outcome=refused: wrong code`), which no bare value does.
//! [`fields`] reads a line back that way (tests, and whoever parses the log).

use std::borrow::Cow;
use std::fmt::Write;

/// `s` as a field value (see the module documentation).
pub fn value(s: &str) -> Cow<'_, str> {
    let bare = !s.is_empty()
        && !s.ends_with(':')
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'='));
    if bare {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' ' => out.push(' '),
            c if c.is_ascii_graphic() => out.push(c),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// `s` cut to at most `max` characters, then as a field value.
pub fn value_cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => value(s.get(..at).unwrap_or(s)).into_owned(),
        None => value(s).into_owned(),
    }
}

/// The `key=value` fields of `text` (a log line without its prefix, up to where free text
/// starts): tokens separated by spaces, a quoted value read to its closing quote with its
/// escapes undone. Reading stops at the first token that is not `key=value` (the free text).
pub fn fields(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while let Some((key, after)) = rest.split_once('=') {
        if key.is_empty() || key.contains([' ', '"']) {
            break;
        }
        let (val, next) = if let Some(quoted) = after.strip_prefix('"') {
            match unquote(quoted) {
                Some((v, n)) => match n.strip_prefix(':') {
                    Some(_) => {
                        out.push((key.to_owned(), v));
                        break;
                    }
                    None => (v, n),
                },
                None => break,
            }
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            let (v, n) = after.split_at(end);
            if let Some(last) = v.strip_suffix(':') {
                // The last field: free text follows.
                out.push((key.to_owned(), last.to_owned()));
                break;
            }
            (v.to_owned(), n)
        };
        out.push((key.to_owned(), val));
        rest = next.strip_prefix(' ').unwrap_or(next);
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// The value of a quoted field whose opening quote is gone, and what follows its closing one.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, s.get(i + 1..).unwrap_or(""))),
            '\\' => match chars.next()?.1 {
                'x' => {
                    let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                'u' => {
                    if chars.next()?.1 != '{' {
                        return None;
                    }
                    let hex: String = chars
                        .by_ref()
                        .map(|(_, c)| c)
                        .take_while(|c| *c != '}')
                        .collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_bare_and_the_rest_is_quoted_and_read_back() {
        assert_eq!(value("alice"), "alice");
        assert_eq!(value("2001:db8::1/64"), "2001:db8::1/64");
        assert_eq!(value(""), "\"\"");
        for hostile in [
            "sshd answer=Accepted: rule=user status=enforced: code accepted",
            "x\" answer=\"accepted",
            "a\\\" b",
            "line\nbreak\r\0",
            "no\u{a0}break\u{2028}sep\u{202e}rtl",
            "=",
            "\"",
        ] {
            let line = format!(
                "user={} service={} answer=refused",
                value(hostile),
                value(hostile)
            );
            let f = fields(&line);
            assert_eq!(
                f,
                vec![
                    ("user".to_owned(), hostile.to_owned()),
                    ("service".to_owned(), hostile.to_owned()),
                    ("answer".to_owned(), "refused".to_owned())
                ],
                "{line}"
            );
            assert!(
                !line.contains(['\n', '\r', '\0', '\u{2028}', '\u{a0}']),
                "{line}"
            );
        }
    }

    #[test]
    fn cut_values_stay_whole_characters() {
        assert_eq!(value_cut("ééé", 2), "\"\\u{e9}\\u{e9}\"");
        assert_eq!(value_cut("abc", 10), "abc");
    }

    #[test]
    fn free_text_ends_the_fields() {
        let f = fields("user=a outcome=refused: wrong code x=y");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1], ("outcome".to_owned(), "refused".to_owned()));
        assert_eq!(value("2001:db8::"), "\"2001:db8::\"");
        let f = fields(&format!("source={} outcome=ok: x", value("2001:db8::")));
        assert_eq!(f[0].1, "2001:db8::");
        assert_eq!(f[1].1, "ok");
    }
}
