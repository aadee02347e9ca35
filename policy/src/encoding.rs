//! Base32 (RFC 4648 §6, for TOTP secrets) and base64 (RFC 4648 §4, for recovery-code hashes),
//! both without padding, and only in their canonical form: a decoder accepts exactly the texts
//! the encoder can produce (unused trailing bits zero, no impossible lengths), so one value has
//! one spelling.
//!
//! Small on purpose: every login decodes a secret and checks ten hashes in a module that libpam
//! maps afresh, so the code it runs should be short. The tests compare both codecs with the
//! `data-encoding` crate over generated and damaged inputs.

use zeroize::Zeroizing;

/// The RFC 4648 base32 alphabet (upper case).
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The RFC 4648 base64 alphabet.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A text that is not the canonical encoding of any bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// Each byte's value in `alphabet`, or `NONE`.
// Evaluated at compile time only: an index out of bounds would fail the build.
#[allow(clippy::indexing_slicing)]
const fn values(alphabet: &[u8]) -> [u8; 256] {
    let mut t = [NONE; 256];
    let mut i = 0;
    while i < alphabet.len() {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
}

/// Not a character of the alphabet.
const NONE: u8 = 0xff;
const B32_VALUES: [u8; 256] = values(B32);
const B64_VALUES: [u8; 256] = values(B64);

/// Encodes `bytes` with `bits` bits per character from `alphabet` (no padding).
fn encode(bytes: &[u8], bits: u32, alphabet: &[u8]) -> String {
    let mask = (1u32 << bits) - 1;
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(bits as usize));
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        n += 8;
        while n >= bits {
            n -= bits;
            let i = (acc >> n) & mask;
            out.push(char::from(
                alphabet.get(i as usize).copied().unwrap_or(b'?'),
            ));
        }
        acc &= (1u32 << n) - 1;
    }
    if n > 0 {
        let i = (acc << (bits - n)) & mask;
        out.push(char::from(
            alphabet.get(i as usize).copied().unwrap_or(b'?'),
        ));
    }
    out
}

/// Decodes `text` (`bits` bits per character, values from `values`) into `out`, which must hold
/// exactly the decoded length; canonical texts only.
fn decode_into(
    text: &[u8],
    bits: u32,
    values: &[u8; 256],
    out: &mut [u8],
) -> Result<(), DecodeError> {
    let (mut acc, mut n, mut k) = (0u32, 0u32, 0usize);
    for &c in text {
        let v = values.get(usize::from(c)).copied().unwrap_or(NONE);
        if v == NONE {
            return Err(DecodeError);
        }
        acc = (acc << bits) | u32::from(v);
        n += bits;
        if n >= 8 {
            n -= 8;
            *out.get_mut(k).ok_or(DecodeError)? = (acc >> n) as u8;
            k += 1;
        }
        acc &= (1u32 << n) - 1;
    }
    // Leftover bits must be padding only (fewer than a character's worth) and all zero.
    if k != out.len() || n >= bits || acc != 0 {
        return Err(DecodeError);
    }
    Ok(())
}

/// The number of bytes a text of `chars` characters of `bits` bits decodes to, if that length
/// is possible at all (the last character must carry at least one bit of the last byte).
fn decoded_len(chars: usize, bits: u32) -> Option<usize> {
    let total = chars.checked_mul(bits as usize)?;
    let bytes = total / 8;
    // A canonical text has the fewest characters that hold its bytes.
    ((bytes * 8).div_ceil(bits as usize) == chars).then_some(bytes)
}

/// Base32 of `bytes`, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    encode(bytes, 5, B32)
}

/// The bytes of canonical unpadded upper-case base32 `text`; wiped when dropped (secrets).
pub fn base32_decode(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    let len = decoded_len(text.len(), 5).ok_or(DecodeError)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    decode_into(text, 5, &B32_VALUES, &mut out)?;
    Ok(out)
}

/// Base64 of `bytes` (standard alphabet), without padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    encode(bytes, 6, B64)
}

/// Decodes canonical unpadded base64 `text` of exactly `N` bytes, with no allocation.
pub fn base64_decode_array<const N: usize>(text: &[u8]) -> Result<[u8; N], DecodeError> {
    if decoded_len(text.len(), 6) != Some(N) {
        return Err(DecodeError);
    }
    let mut out = [0u8; N];
    decode_into(text, 6, &B64_VALUES, &mut out)?;
    Ok(out)
}

/// The bytes of canonical unpadded base64 `text`.
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let len = decoded_len(text.len(), 6).ok_or(DecodeError)?;
    let mut out = vec![0u8; len];
    decode_into(text, 6, &B64_VALUES, &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic here is a failed test
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let v = [
            ("", "", ""),
            ("f", "MY", "Zg"),
            ("fo", "MZXQ", "Zm8"),
            ("foo", "MZXW6", "Zm9v"),
            ("foob", "MZXW6YQ", "Zm9vYg"),
            ("fooba", "MZXW6YTB", "Zm9vYmE"),
            ("foobar", "MZXW6YTBOI", "Zm9vYmFy"),
        ];
        for (plain, b32, b64) in v {
            assert_eq!(base32_encode(plain.as_bytes()), b32);
            assert_eq!(base64_encode(plain.as_bytes()), b64);
            assert_eq!(
                base32_decode(b32.as_bytes()).unwrap().as_slice(),
                plain.as_bytes()
            );
            assert_eq!(base64_decode(b64.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        // A length no byte count gives, a non-zero trailing bit, padding, lower case.
        for t in ["M", "MZX", "MZXW6Y", "MZ", "MY======", "my", "MZXW6YQ="] {
            assert_eq!(
                base32_decode(t.as_bytes()).map(|_| ()),
                Err(DecodeError),
                "{t}"
            );
        }
        for t in ["Z", "Zh", "Zm9", "Zg==", "Zm9vY", "Zm-v", "Zm_v"] {
            assert_eq!(base64_decode(t.as_bytes()), Err(DecodeError), "{t}");
        }
        assert_eq!(base64_decode_array::<2>(b"Zm9v"), Err(DecodeError));
        assert_eq!(base64_decode_array::<3>(b"Zm9v"), Ok(*b"foo"));
    }
}
