use super::*;

/// Bytes from hex pairs, spaces ignored.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn integers_have_known_minimal_encodings() {
    for (v, bytes) in [
        (0i64, "02 01 00"),
        (1, "02 01 01"),
        (127, "02 01 7f"),
        (128, "02 02 00 80"),
        (255, "02 02 00 ff"),
        (256, "02 02 01 00"),
        (-1, "02 01 ff"),
        (-128, "02 01 80"),
        (-129, "02 02 ff 7f"),
        (i64::from(i32::MAX), "02 04 7f ff ff ff"),
        (i64::from(i32::MIN), "02 04 80 00 00 00"),
        (i64::MAX, "02 08 7f ff ff ff ff ff ff ff"),
        (i64::MIN, "02 08 80 00 00 00 00 00 00 00"),
    ] {
        let e = Element::int(Tag::INTEGER, v);
        assert_eq!(&e.encode()[..], &hex(bytes)[..], "{v}");
        assert_eq!(e.encoded_len(), hex(bytes).len());
        let encoded = e.encode();
        let mut r = Reader::new(&encoded);
        assert_eq!(r.read_int(Tag::INTEGER).unwrap(), v);
        r.finish().unwrap();
    }
}

#[test]
fn integers_decode_leniently_but_bounded() {
    // Non-minimal forms are BER all the same.
    assert_eq!(decode_int(&hex("00 00 05")).unwrap(), 5);
    assert_eq!(decode_int(&hex("ff ff")).unwrap(), -1);
    assert!(decode_int(&[]).is_err());
    assert!(decode_int(&hex("01 00 00 00 00 00 00 00 00")).is_err());
    assert!(decode_int(&hex("00 ff ff ff ff ff ff ff ff")).is_err());
}

#[test]
fn lengths_use_short_and_long_forms() {
    for (n, header) in [
        (0usize, "04 00"),
        (127, "04 7f"),
        (128, "04 81 80"),
        (255, "04 81 ff"),
        (256, "04 82 01 00"),
        (70_000, "04 83 01 11 70"),
    ] {
        let data = vec![0x5a; n];
        let encoded = Element::octets(&data).encode();
        let h = hex(header);
        assert_eq!(&encoded[..h.len()], &h[..], "{n}");
        assert_eq!(encoded.len(), h.len() + n);
        assert_eq!(encoded.capacity(), encoded.len(), "no reallocation");
        assert_eq!(header_of(&encoded), (Tag::OCTET_STRING, h.len(), n));
        let mut r = Reader::new(&encoded);
        assert_eq!(r.read(Tag::OCTET_STRING).unwrap(), &data[..]);
        assert!(r.is_empty());
    }
    // A non-minimal long form is valid BER.
    let mut r = Reader::new(&[0x04, 0x82, 0x00, 0x02, b'h', b'i']);
    assert_eq!(r.read(Tag::OCTET_STRING).unwrap(), b"hi");
}

fn header_of(buf: &[u8]) -> (Tag, usize, usize) {
    header(buf).unwrap().unwrap()
}

#[test]
fn booleans_and_constructed() {
    assert_eq!(&Element::boolean(true).encode()[..], &[0x01, 0x01, 0xff]);
    assert_eq!(&Element::boolean(false).encode()[..], &[0x01, 0x01, 0x00]);
    let mut r = Reader::new(&[0x01, 0x01, 0x01, 0x01, 0x01, 0x00]);
    assert!(r.read_bool().unwrap());
    assert!(!r.read_bool().unwrap());
    assert!(Reader::new(&[0x01, 0x02, 0, 0]).read_bool().is_err());
    assert!(Reader::new(&[0x01, 0x00]).read_bool().is_err());

    let e = Element::sequence(vec![
        Element::int(Tag::ENUMERATED, 2),
        Element::cons(Tag::SET, vec![Element::octets(b"a"), Element::octets(b"")]),
        Element::bytes(Tag::context(7, false), b"cn"),
        Element::cons(Tag::application(3, true), vec![]),
    ]);
    let encoded = e.encode();
    assert_eq!(
        &encoded[..],
        &hex("30 10 0a 01 02 31 05 04 01 61 04 00 87 02 63 6e 63 00")[..]
    );
    let mut outer = Reader::new(&encoded);
    let mut seq = outer.read_constructed(Tag::SEQUENCE).unwrap();
    outer.finish().unwrap();
    assert_eq!(seq.read_int(Tag::ENUMERATED).unwrap(), 2);
    let mut set = seq.read_constructed(Tag::SET).unwrap();
    assert_eq!(set.read(Tag::OCTET_STRING).unwrap(), b"a");
    assert_eq!(set.read(Tag::OCTET_STRING).unwrap(), b"");
    set.finish().unwrap();
    assert_eq!(seq.read_optional(Tag::context(8, false)).unwrap(), None);
    assert_eq!(
        seq.read_optional(Tag::context(7, false)).unwrap(),
        Some(&b"cn"[..])
    );
    let app = seq.read_constructed(Tag::application(3, true)).unwrap();
    assert!(app.is_empty());
    seq.finish().unwrap();
    validate(&encoded).unwrap();
}

#[test]
fn tags() {
    assert_eq!(Tag::application(0, true), Tag(0x60));
    assert_eq!(Tag::application(10, false), Tag(0x4a));
    assert_eq!(Tag::application(24, true), Tag(0x78));
    assert_eq!(Tag::context(0, false), Tag(0x80));
    assert_eq!(Tag::context(3, true), Tag(0xa3));
    assert!(Tag::SEQUENCE.is_constructed() && !Tag::INTEGER.is_constructed());
}

#[test]
fn hostile_headers() {
    // Incomplete: more bytes are needed, nothing is wrong yet.
    assert_eq!(header(&[]).unwrap(), None);
    assert_eq!(header(&[0x30]).unwrap(), None);
    assert_eq!(header(&[0x30, 0x82, 0x01]).unwrap(), None);
    // Indefinite, reserved and too long.
    assert_eq!(header(&[0x30, 0x80]), Err(BerError::Indefinite));
    assert_eq!(header(&[0x30, 0xff]), Err(BerError::TooLong));
    assert_eq!(header(&[0x30, 0x85, 0, 0, 0, 0, 1]), Err(BerError::TooLong));
    assert_eq!(
        header(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
        Err(BerError::TooLong)
    );
    // 16 MiB is the most; one byte more is refused.
    let max = MAX_MESSAGE.to_be_bytes();
    let max = &max[max.len() - 4..];
    assert_eq!(
        header(&[0x30, 0x84, max[0], max[1], max[2], max[3]]).unwrap(),
        Some((Tag::SEQUENCE, 6, MAX_MESSAGE))
    );
    let over = (MAX_MESSAGE + 1).to_be_bytes();
    let over = &over[over.len() - 4..];
    assert_eq!(
        header(&[0x30, 0x84, over[0], over[1], over[2], over[3]]),
        Err(BerError::TooLong)
    );
    assert_eq!(header(&[0x1f, 0x01]), Err(BerError::HighTag));
    assert_eq!(header(&[0x7f, 0x01]), Err(BerError::HighTag));
}

#[test]
fn hostile_elements() {
    // A length past the end of the buffer.
    let mut r = Reader::new(&[0x04, 0x05, b'a']);
    assert_eq!(r.read(Tag::OCTET_STRING), Err(BerError::Truncated));
    // Wrong tag, missing element, trailing bytes.
    let mut r = Reader::new(&[0x02, 0x01, 0x00]);
    assert_eq!(
        r.read(Tag::OCTET_STRING),
        Err(BerError::UnexpectedTag {
            expected: 0x04,
            found: 0x02
        })
    );
    assert_eq!(
        Reader::new(&[]).read(Tag::INTEGER),
        Err(BerError::Missing(0x02))
    );
    assert_eq!(Reader::new(&[0x05, 0x00]).finish(), Err(BerError::Trailing));
    // A primitive tag is not read as constructed, nor the other way round.
    assert!(
        Reader::new(&[0x04, 0x00])
            .read_constructed(Tag(0x04))
            .is_err()
    );
    assert!(
        Reader::new(&[0x24, 0x00])
            .read_constructed(Tag::SEQUENCE)
            .is_err()
    );
    // An empty INTEGER.
    assert!(Reader::new(&[0x02, 0x00]).read_int(Tag::INTEGER).is_err());
}

/// `depth` SEQUENCEs, each inside the previous one (built as bytes: the encoder recurses).
pub(crate) fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x30, 0x00];
    for _ in 1..depth {
        let mut outer = vec![0x30];
        write_length(&mut outer, v.len());
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

#[test]
fn nesting_is_bounded() {
    validate(&nested(MAX_DEPTH)).unwrap();
    assert_eq!(validate(&nested(MAX_DEPTH + 1)), Err(BerError::TooDeep));
    assert_eq!(validate(&nested(2_000)), Err(BerError::TooDeep));
    // Read by hand, level by level: the reader stops at the same depth.
    let buf = nested(100);
    let mut r = Reader::new(&buf);
    let mut levels = 0;
    let err = loop {
        match r.read_constructed(Tag::SEQUENCE) {
            Ok(inner) => {
                levels += 1;
                r = inner;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, BerError::TooDeep);
    assert_eq!(levels, MAX_DEPTH);
}

#[test]
fn every_truncation_is_an_error() {
    let e = Element::sequence(vec![
        Element::int(Tag::INTEGER, 300),
        Element::cons(
            Tag::application(4, true),
            vec![Element::octets(&[0x41; 200]), Element::sequence(vec![])],
        ),
    ]);
    let full = e.encode();
    validate(&full).unwrap();
    for n in 0..full.len() {
        assert!(validate(&full[..n]).is_err() || n == 0, "{n}");
        match header(&full[..n]) {
            Ok(Some((_, h, len))) => assert!(h + len > n),
            Ok(None) => {}
            Err(e) => panic!("{n}: {e}"),
        }
    }
}

/// A small deterministic generator (xorshift64*), for arbitrary bytes without a dependency.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let n = (rng.next() % 64) as usize;
        let mut buf = rng.bytes(n);
        // Bias towards plausible structure: a constructed tag first, a small length second.
        if let Some(b) = buf.first_mut()
            && i % 2 == 0
        {
            *b = 0x30;
        }
        if let Some(b) = buf.get_mut(1)
            && i % 3 == 0
        {
            *b %= 0x40;
        }
        let _ = validate(&buf);
        let _ = header(&buf);
        let mut r = Reader::new(&buf);
        while r.read_any().is_ok() {}
    }
}
