//! The LDAP messages this client sends and the responses it reads (RFC 4511 §4).

use zeroize::Zeroizing;

use super::ber::{BerError, Element, Reader, Tag};
use super::entry::{Entry, Mod};
use super::filter::Filter;

/// The StartTLS extended operation (RFC 4511 §4.14).
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// The notice of disconnection, an unsolicited notification (RFC 4511 §4.4.1).
pub const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";

// Protocol operations: [APPLICATION n].
const BIND_REQUEST: Tag = Tag::application(0, true);
const BIND_RESPONSE: Tag = Tag::application(1, true);
const UNBIND_REQUEST: Tag = Tag::application(2, false);
const SEARCH_REQUEST: Tag = Tag::application(3, true);
const SEARCH_ENTRY: Tag = Tag::application(4, true);
const SEARCH_DONE: Tag = Tag::application(5, true);
const MODIFY_REQUEST: Tag = Tag::application(6, true);
const MODIFY_RESPONSE: Tag = Tag::application(7, true);
const ADD_REQUEST: Tag = Tag::application(8, true);
const ADD_RESPONSE: Tag = Tag::application(9, true);
const DEL_REQUEST: Tag = Tag::application(10, false);
const DEL_RESPONSE: Tag = Tag::application(11, true);
const SEARCH_REFERENCE: Tag = Tag::application(19, true);
const EXTENDED_REQUEST: Tag = Tag::application(23, true);
const EXTENDED_RESPONSE: Tag = Tag::application(24, true);
const INTERMEDIATE_RESPONSE: Tag = Tag::application(25, true);

/// How a bind authenticates, borrowed from [`Auth`](super::Auth).
pub enum BindAuth<'a> {
    /// Simple: a DN and a password (both empty: anonymous).
    Simple {
        /// The name.
        dn: &'a str,
        /// The password.
        password: &'a [u8],
    },
    /// SASL EXTERNAL: the identity the connection already has (peer credentials on ldapi).
    SaslExternal,
}

/// `BindRequest`, LDAPv3.
pub fn bind_request<'a>(auth: &BindAuth<'a>) -> Element<'a> {
    let (name, authentication) = match auth {
        BindAuth::Simple { dn, password } => (
            dn.as_bytes(),
            Element::bytes(Tag::context(0, false), password),
        ),
        // Empty credentials: the initial response of EXTERNAL with no authorization identity
        // (RFC 4422 appendix A). Without them slapd answers saslBindInProgress and waits for
        // one more round.
        BindAuth::SaslExternal => (
            &b""[..],
            Element::cons(
                Tag::context(3, true),
                vec![Element::octets(b"EXTERNAL"), Element::octets(b"")],
            ),
        ),
    };
    Element::cons(
        BIND_REQUEST,
        vec![
            Element::int(Tag::INTEGER, 3),
            Element::octets(name),
            authentication,
        ],
    )
}

/// Search scope (RFC 4511 §4.5.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The base entry alone.
    Base,
    /// The base entry's children.
    One,
    /// The base entry and everything below it.
    Sub,
}

/// `SearchRequest`: aliases never dereferenced, types and values both returned.
pub fn search_request<'a>(
    base: &'a str,
    scope: Scope,
    filter: &'a Filter,
    attrs: &[&'a str],
    size_limit: u32,
    time_limit: u32,
) -> Element<'a> {
    let scope = match scope {
        Scope::Base => 0,
        Scope::One => 1,
        Scope::Sub => 2,
    };
    Element::cons(
        SEARCH_REQUEST,
        vec![
            Element::octets(base.as_bytes()),
            Element::int(Tag::ENUMERATED, scope),
            Element::int(Tag::ENUMERATED, 0), // derefAliases: neverDerefAliases
            Element::int(Tag::INTEGER, i64::from(size_limit)),
            Element::int(Tag::INTEGER, i64::from(time_limit)),
            Element::boolean(false),
            filter.to_ber(),
            Element::sequence(
                attrs
                    .iter()
                    .map(|a| Element::octets(a.as_bytes()))
                    .collect(),
            ),
        ],
    )
}

fn partial_attribute<'a>(attr: &'a str, values: &[&'a [u8]]) -> Element<'a> {
    Element::sequence(vec![
        Element::octets(attr.as_bytes()),
        Element::cons(
            Tag::SET,
            values.iter().map(|v| Element::octets(v)).collect(),
        ),
    ])
}

/// `ModifyRequest`: the changes, in order, applied atomically by the server.
pub fn modify_request<'a>(dn: &'a str, mods: &'a [Mod]) -> Element<'a> {
    let changes = mods
        .iter()
        .map(|m| {
            let values: Vec<&[u8]> = m.values.iter().map(Vec::as_slice).collect();
            Element::sequence(vec![
                Element::int(Tag::ENUMERATED, m.op.code()),
                partial_attribute(&m.attr, &values),
            ])
        })
        .collect();
    Element::cons(
        MODIFY_REQUEST,
        vec![Element::octets(dn.as_bytes()), Element::sequence(changes)],
    )
}

/// `AddRequest`.
pub fn add_request<'a>(dn: &'a str, attrs: &[(&'a str, &[&'a [u8]])]) -> Element<'a> {
    Element::cons(
        ADD_REQUEST,
        vec![
            Element::octets(dn.as_bytes()),
            Element::sequence(
                attrs
                    .iter()
                    .map(|(a, vs)| partial_attribute(a, vs))
                    .collect(),
            ),
        ],
    )
}

/// `DelRequest`.
pub fn del_request(dn: &str) -> Element<'_> {
    Element::bytes(DEL_REQUEST, dn.as_bytes())
}

/// `ExtendedRequest` for StartTLS.
pub fn starttls_request() -> Element<'static> {
    Element::cons(
        EXTENDED_REQUEST,
        vec![Element::bytes(
            Tag::context(0, false),
            STARTTLS_OID.as_bytes(),
        )],
    )
}

/// `UnbindRequest`.
pub fn unbind_request() -> Element<'static> {
    Element::bytes(UNBIND_REQUEST, b"")
}

/// The bytes of an `LDAPMessage` carrying `op` with message ID `id`, in a buffer wiped when
/// dropped.
pub fn message(id: i32, op: Element<'_>) -> Zeroizing<Vec<u8>> {
    Element::sequence(vec![Element::int(Tag::INTEGER, i64::from(id)), op]).encode()
}

/// `LDAPResult`: the outcome of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapResult {
    /// resultCode.
    pub code: u32,
    /// matchedDN.
    pub matched_dn: String,
    /// diagnosticMessage.
    pub message: String,
}

/// The operation of a message from the server.
#[derive(Debug)]
pub enum Response {
    /// `BindResponse`.
    Bind(LdapResult),
    /// `SearchResultEntry`.
    Entry(Entry),
    /// `SearchResultReference` (continuation references are not followed).
    Reference,
    /// `SearchResultDone`.
    Done(LdapResult),
    /// `ModifyResponse`.
    Modify(LdapResult),
    /// `AddResponse`.
    Add(LdapResult),
    /// `DelResponse`.
    Delete(LdapResult),
    /// `ExtendedResponse`, with its responseName if any.
    Extended(LdapResult, Option<String>),
    /// `IntermediateResponse`, ignored.
    Intermediate,
    /// An operation this client never asks for.
    Other(Tag),
}

/// A message from the server: its ID and operation (controls are ignored).
#[derive(Debug)]
pub struct Message {
    /// messageID; 0 for an unsolicited notification.
    pub id: i32,
    /// protocolOp.
    pub op: Response,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ldap_result(r: &mut Reader<'_>) -> Result<LdapResult, BerError> {
    let code = r.read_int(Tag::ENUMERATED)?;
    let code = u32::try_from(code).map_err(|_| BerError::Invalid("negative resultCode"))?;
    let matched_dn = text(r.read(Tag::OCTET_STRING)?);
    let message = text(r.read(Tag::OCTET_STRING)?);
    // referral [3], and any extension fields, are ignored.
    Ok(LdapResult {
        code,
        matched_dn,
        message,
    })
}

fn search_entry(mut r: Reader<'_>) -> Result<Entry, BerError> {
    let mut entry = Entry {
        dn: text(r.read(Tag::OCTET_STRING)?),
        attrs: Vec::new(),
    };
    let mut list = r.read_constructed(Tag::SEQUENCE)?;
    r.finish()?;
    while !list.is_empty() {
        let mut attr = list.read_constructed(Tag::SEQUENCE)?;
        let name = text(attr.read(Tag::OCTET_STRING)?);
        let mut vals = attr.read_constructed(Tag::SET)?;
        attr.finish()?;
        let mut values = Vec::new();
        while !vals.is_empty() {
            values.push(vals.read(Tag::OCTET_STRING)?.to_vec());
        }
        entry.attrs.push((name, values));
    }
    Ok(entry)
}

/// Parses one `LDAPMessage` (identifier and length included).
pub fn parse_message(buf: &[u8]) -> Result<Message, BerError> {
    let mut outer = Reader::new(buf);
    let mut msg = outer.read_constructed(Tag::SEQUENCE)?;
    outer.finish()?;
    let id = msg.read_int(Tag::INTEGER)?;
    let id = i32::try_from(id)
        .ok()
        .filter(|id| *id >= 0)
        .ok_or(BerError::Invalid("messageID out of range"))?;
    let (tag, contents) = msg.read_any()?;
    // Controls [0] and anything after them are ignored.
    let op = if tag.is_constructed() {
        let mut r = msg.enter(contents)?;
        match tag {
            BIND_RESPONSE => Response::Bind(ldap_result(&mut r)?),
            SEARCH_ENTRY => Response::Entry(search_entry(r)?),
            SEARCH_REFERENCE => Response::Reference,
            SEARCH_DONE => Response::Done(ldap_result(&mut r)?),
            MODIFY_RESPONSE => Response::Modify(ldap_result(&mut r)?),
            ADD_RESPONSE => Response::Add(ldap_result(&mut r)?),
            DEL_RESPONSE => Response::Delete(ldap_result(&mut r)?),
            EXTENDED_RESPONSE => {
                let result = ldap_result(&mut r)?;
                let _referral = r.read_optional(Tag::context(3, true))?;
                let name = r.read_optional(Tag::context(10, false))?.map(text);
                Response::Extended(result, name)
            }
            INTERMEDIATE_RESPONSE => Response::Intermediate,
            other => Response::Other(other),
        }
    } else {
        Response::Other(tag)
    };
    Ok(Message { id, op })
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
