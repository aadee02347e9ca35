//! The login path's own base32 and base64 codecs against the `data-encoding` crate: the same
//! text for every byte string, and the same verdict (the same bytes, or a refusal) for every
//! text, generated and damaged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::Rng;
use twofold_policy::encoding::{
    base32_decode, base32_encode, base64_decode, base64_decode_array, base64_encode,
};

fn bytes(r: &mut Rng, max: u64) -> Vec<u8> {
    (0..r.below(max + 1)).map(|_| r.next() as u8).collect()
}

#[test]
fn encoders_agree_with_data_encoding() {
    let mut r = Rng(0x05ee_db32);
    for _ in 0..20_000 {
        let b = bytes(&mut r, 70);
        assert_eq!(base32_encode(&b), data_encoding::BASE32_NOPAD.encode(&b));
        assert_eq!(base64_encode(&b), data_encoding::BASE64_NOPAD.encode(&b));
    }
}

#[test]
fn decoders_agree_with_data_encoding_on_any_text() {
    let mut r = Rng(0xdec0_de64);
    let b32_inserts = ["=", "a", "1", "8", "0", " ", "A", "7", "Z", "\u{e9}", "\0"];
    let b64_inserts = ["=", "-", "_", "+", "/", " ", "A", "z", "9", "\u{e9}", "\n"];
    let mut refused = (0, 0);
    for _ in 0..40_000 {
        let b = bytes(&mut r, 40);
        // Canonical texts, damaged ones, and texts whose last character is changed (the
        // trailing bits).
        let mut t32 = data_encoding::BASE32_NOPAD.encode(&b);
        let mut t64 = data_encoding::BASE64_NOPAD.encode(&b);
        match r.below(3) {
            0 => {}
            1 => {
                t32 = r.damage(&t32, &b32_inserts);
                t64 = r.damage(&t64, &b64_inserts);
            }
            _ => {
                if t32.pop().is_some() {
                    t32.push(char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[r.below(32) as usize],
                    ));
                }
                if t64.pop().is_some() {
                    t64.push(char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [r.below(64) as usize],
                    ));
                }
            }
        }
        let ours = base32_decode(t32.as_bytes()).map(|z| z.to_vec()).ok();
        let theirs = data_encoding::BASE32_NOPAD.decode(t32.as_bytes()).ok();
        assert_eq!(ours, theirs, "base32 {t32:?}");
        refused.0 += usize::from(ours.is_none());
        let ours = base64_decode(t64.as_bytes()).ok();
        let theirs = data_encoding::BASE64_NOPAD.decode(t64.as_bytes()).ok();
        assert_eq!(ours, theirs, "base64 {t64:?}");
        refused.1 += usize::from(ours.is_none());
        // The fixed-size decoder takes exactly the texts of 16 and 32 bytes.
        if let Some(t) = &theirs {
            assert_eq!(
                base64_decode_array::<16>(t64.as_bytes())
                    .ok()
                    .map(|a| a.to_vec()),
                (t.len() == 16).then(|| t.clone())
            );
        } else {
            assert!(base64_decode_array::<16>(t64.as_bytes()).is_err());
            assert!(base64_decode_array::<32>(t64.as_bytes()).is_err());
        }
    }
    // Both kinds of verdict were exercised.
    assert!(refused.0 > 10_000 && refused.0 < 30_000, "{refused:?}");
    assert!(refused.1 > 10_000 && refused.1 < 30_000, "{refused:?}");
}
