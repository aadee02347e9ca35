//! BER (ITU-T X.690) as LDAP uses it (RFC 4511 §5.1): definite lengths only, one-byte tags,
//! INTEGER, ENUMERATED, BOOLEAN, NULL, OCTET STRING, SEQUENCE and SET, application and
//! context-specific tags, primitive and constructed.
//!
//! The encoder builds a tree of [`Element`]s that borrows its contents, then writes it once
//! into a buffer of the exact size: no reallocation leaves a stray copy of a password behind.
//! The decoder ([`Reader`]) is total on hostile input: every read is checked against the end
//! of its buffer, lengths are bounded ([`MAX_MESSAGE`]) and so is nesting ([`MAX_DEPTH`]).

use zeroize::Zeroizing;

/// The largest LDAP message accepted, 16 MiB: a longer length is refused before any of it is
/// read, so a hostile server cannot make the client allocate more.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The deepest nesting of constructed elements accepted. An LDAP response nests at most six
/// deep (message, operation, attribute list, attribute, value set, value).
pub const MAX_DEPTH: usize = 16;

/// An identifier octet: class, constructed bit and a tag number below 31 (LDAP uses no others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag(pub u8);

impl Tag {
    /// UNIVERSAL 1.
    pub const BOOLEAN: Tag = Tag(0x01);
    /// UNIVERSAL 2.
    pub const INTEGER: Tag = Tag(0x02);
    /// UNIVERSAL 4.
    pub const OCTET_STRING: Tag = Tag(0x04);
    /// UNIVERSAL 10.
    pub const ENUMERATED: Tag = Tag(0x0a);
    /// UNIVERSAL 16, constructed.
    pub const SEQUENCE: Tag = Tag(0x30);
    /// UNIVERSAL 17, constructed.
    pub const SET: Tag = Tag(0x31);

    const CONSTRUCTED: u8 = 0x20;

    /// `[APPLICATION n]`.
    pub const fn application(n: u8, constructed: bool) -> Tag {
        Tag(0x40 | (n & 0x1f) | if constructed { Tag::CONSTRUCTED } else { 0 })
    }

    /// `[n]` (context-specific).
    pub const fn context(n: u8, constructed: bool) -> Tag {
        Tag(0x80 | (n & 0x1f) | if constructed { Tag::CONSTRUCTED } else { 0 })
    }

    /// Whether the element holds other elements.
    pub const fn is_constructed(self) -> bool {
        self.0 & Tag::CONSTRUCTED != 0
    }
}

/// Why a buffer is not the BER expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The buffer ends inside an element.
    #[error("truncated BER element")]
    Truncated,
    /// An indefinite length (0x80), which LDAP forbids.
    #[error("indefinite BER length")]
    Indefinite,
    /// A length beyond [`MAX_MESSAGE`] or beyond what the length field can say.
    #[error("BER length beyond the limit of {MAX_MESSAGE} bytes")]
    TooLong,
    /// Constructed elements nested deeper than [`MAX_DEPTH`].
    #[error("BER nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A multi-byte tag number (low bits 11111), which LDAP does not use.
    #[error("multi-byte BER tag")]
    HighTag,
    /// Another element than the one the protocol has here.
    #[error("expected BER tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag {
        /// The identifier octet expected.
        expected: u8,
        /// The identifier octet found.
        found: u8,
    },
    /// The buffer ends where an element is required.
    #[error("missing BER element (expected tag {0:#04x})")]
    Missing(u8),
    /// Bytes after the last element of a structure or message.
    #[error("trailing bytes after a BER element")]
    Trailing,
    /// An element of the right tag with invalid contents.
    #[error("invalid BER {0}")]
    Invalid(&'static str),
}

/// The contents of an element to encode.
#[derive(Clone)]
pub enum Value<'a> {
    /// Primitive contents, as they are.
    Bytes(&'a [u8]),
    /// An INTEGER or ENUMERATED value.
    Int(i64),
    /// A BOOLEAN.
    Bool(bool),
    /// Constructed: the elements inside.
    Cons(Vec<Element<'a>>),
}

/// One element to encode: its tag and contents.
#[derive(Clone)]
pub struct Element<'a> {
    tag: Tag,
    value: Value<'a>,
}

impl<'a> Element<'a> {
    /// A primitive element with the given contents.
    pub fn bytes(tag: Tag, bytes: &'a [u8]) -> Element<'a> {
        Element {
            tag,
            value: Value::Bytes(bytes),
        }
    }

    /// An OCTET STRING.
    pub fn octets(bytes: &'a [u8]) -> Element<'a> {
        Element::bytes(Tag::OCTET_STRING, bytes)
    }

    /// An INTEGER (or, with another tag, an ENUMERATED or implicitly tagged integer).
    pub fn int(tag: Tag, v: i64) -> Element<'a> {
        Element {
            tag,
            value: Value::Int(v),
        }
    }

    /// A BOOLEAN.
    pub fn boolean(v: bool) -> Element<'a> {
        Element {
            tag: Tag::BOOLEAN,
            value: Value::Bool(v),
        }
    }

    /// A constructed element: SEQUENCE, SET, or an application or context tag.
    pub fn cons(tag: Tag, children: Vec<Element<'a>>) -> Element<'a> {
        Element {
            tag,
            value: Value::Cons(children),
        }
    }

    /// A SEQUENCE.
    pub fn sequence(children: Vec<Element<'a>>) -> Element<'a> {
        Element::cons(Tag::SEQUENCE, children)
    }

    /// The length of the contents.
    fn content_len(&self) -> usize {
        match &self.value {
            Value::Bytes(b) => b.len(),
            Value::Int(v) => int_bytes(*v).1,
            Value::Bool(_) => 1,
            Value::Cons(children) => children.iter().map(Element::encoded_len).sum(),
        }
    }

    /// The length of the whole element: identifier, length and contents.
    pub fn encoded_len(&self) -> usize {
        let n = self.content_len();
        1 + length_len(n) + n
    }

    /// The element's encoding, in a buffer wiped when dropped and never reallocated.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.tag.0);
        write_length(out, self.content_len());
        match &self.value {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Int(v) => {
                let (bytes, n) = int_bytes(*v);
                out.extend(bytes.iter().skip(bytes.len() - n));
            }
            Value::Bool(v) => out.push(if *v { 0xff } else { 0x00 }),
            Value::Cons(children) => {
                for c in children {
                    c.write(out);
                }
            }
        }
    }
}

/// The big-endian two's complement bytes of `v` and how many of the last ones are needed.
fn int_bytes(v: i64) -> ([u8; 8], usize) {
    let bytes = v.to_be_bytes();
    let mut n = 8;
    // Drop a leading byte while the next one carries the same sign.
    for pair in bytes.windows(2) {
        if let [a, b] = pair
            && ((*a == 0x00 && *b & 0x80 == 0) || (*a == 0xff && *b & 0x80 != 0))
        {
            n -= 1;
        } else {
            break;
        }
    }
    (bytes, n)
}

fn length_len(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        1 + (usize::BITS - n.leading_zeros()).div_ceil(8) as usize
    }
}

fn write_length(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let k = length_len(n) - 1;
        out.push(0x80 | k as u8);
        out.extend(n.to_be_bytes().iter().skip(size_of::<usize>() - k));
    }
}

/// Reads the identifier and length at the start of `buf`: `Ok(None)` while `buf` is too short
/// to tell, else the tag, the length of identifier and length octets, and the contents' length.
/// Contents longer than [`MAX_MESSAGE`] are refused here, before anything is allocated.
pub fn header(buf: &[u8]) -> Result<Option<(Tag, usize, usize)>, BerError> {
    let Some((&id, rest)) = buf.split_first() else {
        return Ok(None);
    };
    if id & 0x1f == 0x1f {
        return Err(BerError::HighTag);
    }
    let Some((&first, rest)) = rest.split_first() else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((Tag(id), 2, usize::from(first))));
    }
    let k = usize::from(first & 0x7f);
    if k == 0 {
        return Err(BerError::Indefinite);
    }
    if k > 4 {
        // Four bytes say up to 4 GiB, far past the limit: more is hostile (or 0x7f reserved).
        return Err(BerError::TooLong);
    }
    let Some(digits) = rest.get(..k) else {
        return Ok(None);
    };
    let n = digits
        .iter()
        .fold(0u64, |acc, &d| (acc << 8) | u64::from(d));
    let n = usize::try_from(n).map_err(|_| BerError::TooLong)?;
    if n > MAX_MESSAGE {
        return Err(BerError::TooLong);
    }
    Ok(Some((Tag(id), 2 + k, n)))
}

/// A cursor over a buffer of BER elements, bounded by the buffer and by a nesting depth.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the elements of `buf`, at depth 0.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, depth: 0 }
    }

    /// Whether every element has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<Tag> {
        self.buf.first().map(|&b| Tag(b))
    }

    /// The next element, whatever its tag: its tag and contents.
    pub fn read_any(&mut self) -> Result<(Tag, &'a [u8]), BerError> {
        let (tag, h, n) = header(self.buf)?.ok_or(BerError::Truncated)?;
        let end = h.checked_add(n).ok_or(BerError::TooLong)?;
        let contents = self.buf.get(h..end).ok_or(BerError::Truncated)?;
        self.buf = self.buf.get(end..).unwrap_or_default();
        Ok((tag, contents))
    }

    /// The contents of the next element, which must have tag `tag`.
    pub fn read(&mut self, tag: Tag) -> Result<&'a [u8], BerError> {
        let found = self.peek_tag().ok_or(BerError::Missing(tag.0))?;
        if found != tag {
            return Err(BerError::UnexpectedTag {
                expected: tag.0,
                found: found.0,
            });
        }
        Ok(self.read_any()?.1)
    }

    /// The next element if it has tag `tag`; `None` (and nothing read) otherwise.
    pub fn read_optional(&mut self, tag: Tag) -> Result<Option<&'a [u8]>, BerError> {
        if self.peek_tag() == Some(tag) {
            self.read(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A reader over the elements inside the next element, a constructed one of tag `tag`.
    pub fn read_constructed(&mut self, tag: Tag) -> Result<Reader<'a>, BerError> {
        if !tag.is_constructed() {
            return Err(BerError::Invalid("primitive tag read as constructed"));
        }
        let contents = self.read(tag)?;
        self.enter(contents)
    }

    /// A reader one level deeper over `contents`.
    pub fn enter(&self, contents: &'a [u8]) -> Result<Reader<'a>, BerError> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep);
        }
        Ok(Reader {
            buf: contents,
            depth,
        })
    }

    /// An INTEGER or ENUMERATED (or implicitly tagged integer) that fits an `i64`.
    pub fn read_int(&mut self, tag: Tag) -> Result<i64, BerError> {
        decode_int(self.read(tag)?)
    }

    /// A BOOLEAN: one byte, any non-zero value true. (No response this client reads has one.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn read_bool(&mut self) -> Result<bool, BerError> {
        match self.read(Tag::BOOLEAN)? {
            [b] => Ok(*b != 0),
            _ => Err(BerError::Invalid("BOOLEAN length")),
        }
    }

    /// Ends reading: an error if elements are left.
    pub fn finish(self) -> Result<(), BerError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(BerError::Trailing)
        }
    }
}

/// The value of an INTEGER's contents: 1 to 8 bytes, two's complement (LDAP's integers are
/// 32-bit; non-minimal forms are tolerated).
pub fn decode_int(bytes: &[u8]) -> Result<i64, BerError> {
    let Some(&first) = bytes.first() else {
        return Err(BerError::Invalid("empty INTEGER"));
    };
    if bytes.len() > 8 {
        return Err(BerError::Invalid("INTEGER beyond 64 bits"));
    }
    let start = if first & 0x80 != 0 { -1i64 } else { 0 };
    Ok(bytes
        .iter()
        .fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// Walks every element of `buf`, entering constructed ones: an error if any is malformed or
/// nested deeper than [`MAX_DEPTH`]. For tests: the protocol reader checks as it goes.
#[cfg(test)]
pub fn validate(buf: &[u8]) -> Result<(), BerError> {
    fn walk(r: &mut Reader<'_>) -> Result<(), BerError> {
        while !r.is_empty() {
            let (tag, contents) = r.read_any()?;
            if tag.is_constructed() {
                walk(&mut r.enter(contents)?)?;
            }
        }
        Ok(())
    }
    walk(&mut Reader::new(buf))
}

#[cfg(test)]
#[path = "ber_tests.rs"]
pub(crate) mod tests;
