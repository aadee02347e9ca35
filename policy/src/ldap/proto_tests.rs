use super::super::ber::tests::{Rng, hex, nested};
use super::super::entry::ModOp;
use super::*;

// Requests: the bytes OpenLDAP 2.5's own tools send (ldapwhoami, ldapsearch and ldapmodify
// run with `-d 3`, which dumps each message), for the same operations.

#[test]
fn simple_bind_as_openldap() {
    let bind = BindAuth::Simple {
        dn: "cn=admin,dc=example,dc=org",
        password: b"secret",
    };
    let expected = hex("30 2c 02 01 01 60 27 02  01 03 04 1a 63 6e 3d 61
                        64 6d 69 6e 2c 64 63 3d  65 78 61 6d 70 6c 65 2c
                        64 63 3d 6f 72 67 80 06  73 65 63 72 65 74");
    assert_eq!(&message(1, bind_request(&bind))[..], &expected[..]);
    let anonymous = BindAuth::Simple {
        dn: "",
        password: b"",
    };
    assert_eq!(
        &message(1, bind_request(&anonymous))[..],
        &hex("30 0c 02 01 01 60 07 02  01 03 04 00 80 00")[..]
    );
}

#[test]
fn sasl_external_bind() {
    // ldapwhoami -Y EXTERNAL: the mechanism, then an empty initial response.
    assert_eq!(
        &message(1, bind_request(&BindAuth::SaslExternal))[..],
        &hex("30 18 02 01 01 60 13 02  01 03 04 00 a3 0c 04 08
              45 58 54 45 52 4e 41 4c  04 00")[..]
    );
}

#[test]
fn search_as_openldap() {
    // ldapsearch -b dc=example,dc=org -s sub -z 5 -l 3 '(&(objectClass=person)(uid=al\2a))' cn
    let filter = Filter::and([
        Filter::eq("objectClass", "person"),
        Filter::eq("uid", "al*"),
    ]);
    let expected = hex("30 52 02 01 02 63 4d 04  11 64 63 3d 65 78 61 6d
                        70 6c 65 2c 64 63 3d 6f  72 67 0a 01 02 0a 01 00
                        02 01 05 02 01 03 01 01  00 a0 23 a3 15 04 0b 6f
                        62 6a 65 63 74 43 6c 61  73 73 04 06 70 65 72 73
                        6f 6e a3 0a 04 03 75 69  64 04 03 61 6c 2a 30 04
                        04 02 63 6e");
    let req = search_request("dc=example,dc=org", Scope::Sub, &filter, &["cn"], 5, 3);
    assert_eq!(&message(2, req)[..], &expected[..]);
}

#[test]
fn add_modify_delete_as_openldap() {
    let dn = "uid=bob,ou=people,dc=example,dc=org";
    let add = add_request(
        dn,
        &[
            ("objectClass", &[b"account"]),
            ("uid", &[b"bob"]),
            ("description", &[b"a"]),
        ],
    );
    let expected = hex("30 68 02 01 02 68 63 04  23 75 69 64 3d 62 6f 62
                        2c 6f 75 3d 70 65 6f 70  6c 65 2c 64 63 3d 65 78
                        61 6d 70 6c 65 2c 64 63  3d 6f 72 67 30 3c 30 18
                        04 0b 6f 62 6a 65 63 74  43 6c 61 73 73 31 09 04
                        07 61 63 63 6f 75 6e 74  30 0c 04 03 75 69 64 31
                        05 04 03 62 6f 62 30 12  04 0b 64 65 73 63 72 69
                        70 74 69 6f 6e 31 03 04  01 61");
    assert_eq!(&message(2, add)[..], &expected[..]);

    // delete: description / description: a / - / add: description / description: b
    let mods = [
        Mod::delete("description", vec![b"a".to_vec()]),
        Mod::add("description", vec![b"b".to_vec()]),
    ];
    let expected = hex("30 5e 02 01 03 66 59 04  23 75 69 64 3d 62 6f 62
                        2c 6f 75 3d 70 65 6f 70  6c 65 2c 64 63 3d 65 78
                        61 6d 70 6c 65 2c 64 63  3d 6f 72 67 30 32 30 17
                        0a 01 01 30 12 04 0b 64  65 73 63 72 69 70 74 69
                        6f 6e 31 03 04 01 61 30  17 0a 01 00 30 12 04 0b
                        64 65 73 63 72 69 70 74  69 6f 6e 31 03 04 01 62");
    assert_eq!(&message(3, modify_request(dn, &mods))[..], &expected[..]);

    let expected = hex("30 28 02 01 04 4a 23 75  69 64 3d 62 6f 62 2c 6f
                        75 3d 70 65 6f 70 6c 65  2c 64 63 3d 65 78 61 6d
                        70 6c 65 2c 64 63 3d 6f  72 67");
    assert_eq!(&message(4, del_request(dn))[..], &expected[..]);
}

#[test]
fn replace_and_delete_whole_attribute() {
    let mods = [
        Mod::replace("x", vec![b"1".to_vec(), b"2".to_vec()]),
        Mod::delete("y", vec![]),
    ];
    assert_eq!(mods[0].op, ModOp::Replace);
    assert_eq!(
        &message(5, modify_request("cn=a", &mods))[..],
        &hex("30 2b 02 01 05 66 26 04 04 63 6e 3d 61 30 1e
              30 10 0a 01 02 30 0b 04 01 78 31 06 04 01 31 04 01 32
              30 0a 0a 01 01 30 05 04 01 79 31 00")[..]
    );
}

#[test]
fn starttls_and_unbind_as_openldap() {
    let expected = hex("30 1d 02 01 01 77 18 80  16 31 2e 33 2e 36 2e 31
                        2e 34 2e 31 2e 31 34 36  36 2e 32 30 30 33 37");
    assert_eq!(&message(1, starttls_request())[..], &expected[..]);
    assert_eq!(
        &message(3, unbind_request())[..],
        &hex("30 05 02 01 03 42 00")[..]
    );
}

// Responses.

#[test]
fn parses_results() {
    let m = parse_message(&hex("30 0c 02 01 01 61 07 0a 01 00 04 00 04 00")).unwrap();
    assert_eq!(m.id, 1);
    let Response::Bind(r) = m.op else {
        panic!("{:?}", m.op)
    };
    assert_eq!(
        (r.code, r.matched_dn.as_str(), r.message.as_str()),
        (0, "", "")
    );

    // invalidCredentials, a diagnostic message, then controls: ignored.
    let m = parse_message(&hex("30 1b 02 01 07 61 09 0a 01 31 04 00 04 02 6e 6f
         a0 0b 30 09 04 07 31 2e 32 2e 33 2e 34"))
    .unwrap();
    assert_eq!(m.id, 7);
    let Response::Bind(r) = m.op else {
        panic!("{:?}", m.op)
    };
    assert_eq!((r.code, r.message.as_str()), (49, "no"));

    // noSuchObject with a matched DN and a referral [3] after the result: ignored.
    let done = Element::sequence(vec![
        Element::int(Tag::INTEGER, 9),
        Element::cons(
            Tag::application(5, true),
            vec![
                Element::int(Tag::ENUMERATED, 32),
                Element::octets(b"dc=example,dc=org"),
                Element::octets(b""),
                Element::cons(
                    Tag::context(3, true),
                    vec![Element::octets(b"ldap://other/")],
                ),
            ],
        ),
    ])
    .encode();
    let m = parse_message(&done).unwrap();
    let Response::Done(r) = m.op else {
        panic!("{:?}", m.op)
    };
    assert_eq!((r.code, r.matched_dn.as_str()), (32, "dc=example,dc=org"));
}

fn entry_message() -> Zeroizing<Vec<u8>> {
    Element::sequence(vec![
        Element::int(Tag::INTEGER, 2),
        Element::cons(
            Tag::application(4, true),
            vec![
                Element::octets(b"uid=alice,ou=people,dc=example,dc=org"),
                Element::sequence(vec![
                    Element::sequence(vec![
                        Element::octets(b"cn"),
                        Element::cons(
                            Tag::SET,
                            vec![Element::octets(b"Alice"), Element::octets(b"A.")],
                        ),
                    ]),
                    Element::sequence(vec![
                        Element::octets(b"oathSecret"),
                        Element::cons(Tag::SET, vec![Element::octets(&[0, 1, 0xff])]),
                    ]),
                    Element::sequence(vec![
                        Element::octets(b"empty"),
                        Element::cons(Tag::SET, vec![]),
                    ]),
                ]),
            ],
        ),
    ])
    .encode()
}

#[test]
fn parses_entries() {
    let m = parse_message(&entry_message()).unwrap();
    assert_eq!(m.id, 2);
    let Response::Entry(e) = m.op else {
        panic!("{:?}", m.op)
    };
    assert_eq!(e.dn, "uid=alice,ou=people,dc=example,dc=org");
    assert_eq!(
        e.get("CN").unwrap(),
        &[b"Alice".to_vec(), b"A.".to_vec()][..]
    );
    assert_eq!(e.get("oathsecret").unwrap(), &[vec![0, 1, 0xff]][..]);
    assert_eq!(e.get("empty").unwrap().len(), 0);
}

#[test]
fn parses_extended_and_other_operations() {
    // The notice of disconnection: message 0, unavailable, the OID as responseName.
    let notice = Element::sequence(vec![
        Element::int(Tag::INTEGER, 0),
        Element::cons(
            Tag::application(24, true),
            vec![
                Element::int(Tag::ENUMERATED, 52),
                Element::octets(b""),
                Element::octets(b"shutting down"),
                Element::bytes(
                    Tag::context(10, false),
                    NOTICE_OF_DISCONNECTION_OID.as_bytes(),
                ),
            ],
        ),
    ])
    .encode();
    let m = parse_message(&notice).unwrap();
    assert_eq!(m.id, 0);
    let Response::Extended(r, name) = m.op else {
        panic!("{:?}", m.op)
    };
    assert_eq!(r.code, 52);
    assert_eq!(name.as_deref(), Some(NOTICE_OF_DISCONNECTION_OID));

    // References and intermediate responses are recognised (and ignored by searches).
    let m = parse_message(&hex("30 08 02 01 02 73 03 04 01 78")).unwrap();
    assert!(matches!(m.op, Response::Reference));
    let m = parse_message(&hex("30 05 02 01 02 79 00")).unwrap();
    assert!(matches!(m.op, Response::Intermediate));
    // An operation never asked for, primitive or constructed.
    let m = parse_message(&hex("30 05 02 01 02 50 00")).unwrap();
    assert!(matches!(m.op, Response::Other(Tag(0x50))));
}

#[test]
fn refuses_malformed_messages() {
    for bad in [
        "",
        "30 00",
        "31 03 02 01 01",
        "30 03 02 01 01",
        "30 05 02 01 ff 61 00",
        "30 09 02 05 01 00 00 00 00 61 00",
        "30 07 02 01 01 61 02 0a 01",
        "30 07 02 01 01 61 02 0a 00",
        "30 0c 02 01 01 61 07 0a 01 ff 04 00 04 00",
        "30 0c 02 01 01 61 07 0a 01 00 04 00 04 01",
        "30 0c 02 01 01 61 07 0a 01 00 04 00 04 00 00",
        "30 0a 02 01 01 64 05 04 00 30 01 00",
    ] {
        assert!(parse_message(&hex(bad)).is_err(), "{bad}");
    }
    assert!(parse_message(&nested(2_000)).is_err());
    // Deep nesting where an entry's attribute list is.
    let mut deep = Element::sequence(vec![]);
    for _ in 0..40 {
        deep = Element::sequence(vec![deep]);
    }
    let m = Element::sequence(vec![
        Element::int(Tag::INTEGER, 2),
        Element::cons(Tag::application(4, true), vec![Element::octets(b""), deep]),
    ])
    .encode();
    assert!(parse_message(&m).is_err());
}

#[test]
fn mutated_and_truncated_entries_never_panic() {
    let good = entry_message();
    for n in 0..good.len() {
        assert!(parse_message(&good[..n]).is_err(), "{n}");
    }
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut m = good.to_vec();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % m.len();
            m[i] = rng.next() as u8;
        }
        let _ = parse_message(&m);
    }
}
