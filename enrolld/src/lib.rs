//! twofold-enrolld: the D-Bus daemon where admins require, exempt and reset users and users
//! enroll, and the names and types its clients (the `twofold` command) share with it.
//!
//! - [`api`]: bus name, object path, interface, the named errors and the user view;
//! - [`index`]: the user database files parsed once and the listing's rows and records,
//!   each kept while the identity of the files it came from is unchanged;
//! - [`ops`]: every operation, synchronous, on the policy and the store of the `policy` crate,
//!   given a caller the bus identified;
//! - [`service`]: the `org.twofold.Enroll1.Manager` interface that resolves the caller from
//!   the bus and calls [`ops`] off the bus's executor;
//! - [`worker`]: the threads that run the calls' blocking work, and the calls each caller may
//!   have running;
//! - [`polkit`]: asking polkit about a caller (`manage-others`, `manage-own`);
//! - [`subscribers`]: the connections that get `Changed` for every change;
//! - [`policy_edit`]: `SetDefaultMode`, editing `policy.toml` without losing a comment;
//! - [`log`]: one line per admin action and enrollment, to syslog or the journal.
#![forbid(unsafe_code)]

pub mod api;
pub mod changes;
pub mod index;
pub mod log;
pub mod ops;
pub mod policy_edit;
pub mod polkit;
pub mod service;
pub mod subscribers;
pub mod worker;
