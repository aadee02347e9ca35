//! twofold-enrolld for real, on `FindUsers`: the rows of a name prefix and of statuses, page
//! by page, against the full listing; its arguments refused; for admins only. Needs root, as
//! CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::root_or_skip;
use common::world::{World, enroll_directly, err, ok, write_record};
use serde_json::{Value, json};
use twofold_policy::store::Store;
use twofold_policy::{Mode, record::Override};

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

/// Name and status of each row (a pending row's deadline counts from the moment it is made).
fn brief(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every row of a search, walked in pages of `limit`, as name and status; checks the cursors
/// on the way.
fn search(w: &World, prefix: &str, statuses: Value, limit: u64) -> Vec<(String, String)> {
    let mut rows: Vec<Value> = Vec::new();
    let mut after = String::new();
    for _ in 0..10_000 {
        let page = ok(&w.call(
            Some(&w.admin),
            "FindUsers",
            json!([prefix, statuses, after, limit]),
        ))
        .clone();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() as u64 <= limit, "{page}");
        let next = page["next"].as_str().unwrap().to_owned();
        if !next.is_empty() {
            assert_eq!(users.len() as u64, limit, "a page with a cursor is full");
            assert_eq!(users.last().unwrap()["user"], next.as_str());
        }
        rows.extend(users.iter().cloned());
        if next.is_empty() {
            return brief(&rows);
        }
        after = next;
    }
    panic!("the search never ended");
}

#[test]
fn find_users_by_prefix_and_status() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let store = Store::open_or_create(&w.dir.path().join("state")).unwrap();
    // Records with no account: `tffind` + a number; every third enrolled, every fifth exempt
    // by an override, some required; and names around the prefix that must not match.
    let tag = format!("tffind{}", std::process::id());
    let mut mine = Vec::new();
    for i in 0..40 {
        let n = format!("{tag}u{i:02}");
        write_record(&store, &n, |r| {
            if i % 3 == 0 {
                enroll_directly(r);
            }
            if i % 5 == 0 {
                r.admin_override = Some(Override {
                    mode: Mode::Disabled,
                    by: "root".into(),
                    at: 1,
                });
            } else if i % 7 == 0 {
                r.admin_override = Some(Override {
                    mode: Mode::Required,
                    by: "root".into(),
                    at: 1,
                });
            }
        });
        mine.push(n);
    }
    for n in [
        tag.clone(),
        format!("{tag}t99"),
        format!("{tag}v00"),
        format!("{}u00", &tag[..tag.len() - 1]),
    ] {
        write_record(&store, &n, |_| {});
    }
    let all: Vec<Value> = ok(&w.call(None, "ListUsers", json!([])))
        .as_array()
        .unwrap()
        .clone();
    let expect = |prefix: &str, statuses: &[&str]| -> Vec<(String, String)> {
        brief(&all)
            .into_iter()
            .filter(|(u, s)| {
                u.starts_with(prefix) && (statuses.is_empty() || statuses.contains(&s.as_str()))
            })
            .collect()
    };
    let prefix = format!("{tag}u");
    assert_eq!(expect(&prefix, &[]).len(), 40);
    for limit in [1, 3, 7, 1000] {
        // The prefix alone: exactly the 40, in order.
        assert_eq!(
            search(&w, &prefix, json!([]), limit),
            expect(&prefix, &[]),
            "prefix, pages of {limit}"
        );
        // With statuses.
        for statuses in [
            vec!["exempt"],
            vec!["enabled"],
            vec!["pending", "enforced"],
            vec!["off", "exempt", "off"],
        ] {
            let got = search(&w, &prefix, json!(statuses), limit);
            assert_eq!(
                got,
                expect(&prefix, &statuses),
                "{statuses:?}, pages of {limit}"
            );
            assert!(!got.is_empty());
        }
    }
    // "" is every row, as ListUsers has them; a status alone over everyone. Other tests (and
    // other users of this machine) add and remove accounts meanwhile: this test's rows are
    // compared.
    let ours = |rows: Vec<(String, String)>| -> Vec<(String, String)> {
        rows.into_iter()
            .filter(|(u, _)| u.starts_with(&tag))
            .collect()
    };
    assert_eq!(ours(search(&w, "", json!([]), 1000)), expect(&tag, &[]));
    assert_eq!(
        ours(search(&w, "", json!(["exempt"]), 5)),
        expect(&tag, &["exempt"])
    );
    // A cursor inside the range starts after it; one past it gives nothing.
    let p = ok(&w.call(
        None,
        "FindUsers",
        json!([prefix, [], format!("{tag}u19"), 1000]),
    ))
    .clone();
    assert_eq!(p["users"].as_array().unwrap().len(), 20, "{p}");
    assert_eq!(p["users"][0]["user"], format!("{tag}u20"));
    assert_eq!(p["next"], "");
    let p = ok(&w.call(None, "FindUsers", json!([prefix, [], "~", 10]))).clone();
    assert_eq!(p, json!({"users": [], "next": ""}));
    // A prefix nobody has; a prefix that is a whole name.
    let p = ok(&w.call(None, "FindUsers", json!(["tf-nobody-has-this", [], "", 10]))).clone();
    assert_eq!(p, json!({"users": [], "next": ""}));
    assert_eq!(search(&w, &format!("{tag}u07"), json!([]), 10).len(), 1);
    // Limit 0 and a huge limit: pages of the maximum.
    for limit in [0, u64::from(u32::MAX)] {
        let p = ok(&w.call(None, "FindUsers", json!([prefix, [], "", limit]))).clone();
        assert_eq!(p["users"].as_array().unwrap().len(), 40);
    }
    // Refused arguments.
    for statuses in [
        json!(["Pending"]),
        json!(["required"]),
        json!([""]),
        json!(["off", "nope"]),
        // More words than there are statuses: a long list made every row cost as many
        // comparisons while the index was held (a million words held it for minutes; this
        // test's helper takes its arguments in an environment variable, so fewer here).
        json!(vec!["pending"; 6]),
        json!(vec!["off"; 10_000]),
    ] {
        let r = w.call(None, "FindUsers", json!(["", statuses, "", 10]));
        let shown: String = statuses.to_string().chars().take(60).collect();
        assert_eq!(err(&r), "InvalidArgument", "{shown}: {r}");
    }
    // A status twice counts once.
    let twice = ok(&w.call(None, "FindUsers", json!(["", ["off", "off"], "", 1000]))).clone();
    let once = ok(&w.call(None, "FindUsers", json!(["", ["off"], "", 1000]))).clone();
    assert_eq!(twice, once);
    for (p, a) in [
        ("x".repeat(5000), String::new()),
        (String::new(), "x".repeat(5000)),
    ] {
        let r = w.call(None, "FindUsers", json!([p, [], a, 10]));
        assert_eq!(err(&r), "InvalidArgument", "{r}");
    }
    // Admins only: a plain user learns nothing, not even with their own name as the prefix.
    for prefix in ["", w.alice.name.as_str()] {
        let r = w.call(Some(&w.alice), "FindUsers", json!([prefix, [], "", 10]));
        assert_eq!(err(&r), "PermissionDenied", "{r}");
    }
}
