//! twofold-enrolld for real, on `PreviewDefaultMode`: for each new default, the preview's
//! count and transitions are exactly the status changes `SetDefaultMode` then makes (every
//! row of `ListUsers` before and after), over users decided by the default, by `[users.X]`,
//! `[groups.X]`, an admin override, a `policy.d` file, and a record with no account; asking
//! changes nothing; refused for a plain user, for a bad mode, and (as `SetDefaultMode`) when a
//! `policy.d` file's own `mode` overrides the main file's. The CLI's `--dry-run`. Needs root,
//! as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::collections::BTreeMap;

use common::world::{World, enroll_directly, err, ok, write_record};
use common::{Account, Group, as_user, bin, output, root_or_skip};
use serde_json::{Value, json};
use twofold_policy::store::Store;

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

/// user → (status, mode, rule, override) of every row of `ListUsers`.
fn rows(w: &World) -> BTreeMap<String, (String, String, String, Value)> {
    ok(&w.call(None, "ListUsers", json!([])))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                (
                    r["status"].as_str().unwrap().to_owned(),
                    r["mode"].as_str().unwrap().to_owned(),
                    r["rule"].as_str().unwrap().to_owned(),
                    r["override_mode"].clone(),
                ),
            )
        })
        .collect()
}

/// The status of each row.
fn statuses(rows: &BTreeMap<String, (String, String, String, Value)>) -> BTreeMap<String, String> {
    rows.iter()
        .map(|(u, (s, ..))| (u.clone(), s.clone()))
        .collect()
}

/// Previews `mode` as the admin, checks that asking changed nothing, sets it, and checks the
/// preview against the rows before and after: `moved` is exactly the users whose status
/// changed, `transitions` exactly their from → to counts, `total` the rows, `by_default` the
/// rows the main file's `mode` (or the built-in default) decides. Read again when an account
/// of this host came or went meanwhile. Returns the preview and the statuses before and after.
fn preview_then_set(
    w: &World,
    mode: &str,
) -> (Value, BTreeMap<String, String>, BTreeMap<String, String>) {
    for attempt in 0.. {
        let before = rows(w);
        let policy_before = std::fs::read(&w.policy).unwrap();
        let p = ok(&w.call(Some(&w.admin), "PreviewDefaultMode", json!([mode]))).clone();
        assert_eq!(
            std::fs::read(&w.policy).unwrap(),
            policy_before,
            "the preview wrote the policy"
        );
        let again = rows(w);
        if again.keys().ne(before.keys()) {
            assert!(attempt < 3, "the accounts keep changing");
            continue;
        }
        assert_eq!(again, before, "the preview changed a row");
        let was = p["current"].as_str().unwrap().to_owned();
        ok(&w.call(Some(&w.admin), "SetDefaultMode", json!([mode])));
        let after = rows(w);
        if after.keys().ne(before.keys()) {
            assert!(attempt < 3, "the accounts keep changing");
            ok(&w.call(None, "SetDefaultMode", json!([was])));
            continue;
        }
        let (before, after) = (statuses(&before), statuses(&after));
        let mut transitions: BTreeMap<String, u64> = BTreeMap::new();
        for (user, from) in &before {
            let to = &after[user];
            if from != to {
                *transitions.entry(format!("{from}>{to}")).or_default() += 1;
            }
        }
        let moved: u64 = transitions.values().sum();
        assert_eq!(p["moved"], moved, "{mode}: {p}");
        assert_eq!(p["transitions"], json!(transitions), "{mode}: {p}");
        assert_eq!(p["total"], before.len() as u64, "{mode}: {p}");
        assert_eq!(p["current"], was);
        return (p, before, after);
    }
    unreachable!()
}

#[test]
fn preview_counts_exactly_what_set_default_mode_changes() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let grp = Group::create("pg");
    let plain = Account::create("pl", &[]);
    let enrolled = Account::create("en", &[]);
    let ruled = Account::create("ur", &[]);
    let member = Account::create("gm", &[&grp.name]);
    let ghost = format!("tfghost{}", std::process::id());
    let store = Store::open_or_create(&w.dir.path().join("state")).unwrap();
    write_record(&store, &enrolled.name, enroll_directly);
    write_record(&store, &ruled.name, enroll_directly);
    write_record(&store, &ghost, enroll_directly);
    // alice: an admin override; bob: a policy.d rule.
    ok(&w.call(None, "Exempt", json!([w.alice.name])));
    std::fs::write(
        &w.policy,
        format!(
            "# preview test\nmode = \"optional\" # the default\nadmin_group = \"{}\"\n\n[users.{}]\nmode = \"disabled\"\n\n[groups.{}]\nmode = \"required\"\n",
            w.admins.name, ruled.name, grp.name
        ),
    )
    .unwrap();
    let dropins = w.dir.path().join("policy.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("50-site.toml"),
        format!("[users.{}]\nmode = \"optional\"\n", w.bob.name),
    )
    .unwrap();

    // Asked for the mode in force: nothing moves.
    let p = ok(&w.call(None, "PreviewDefaultMode", json!(["optional"]))).clone();
    assert_eq!((&p["moved"], &p["transitions"]), (&json!(0), &json!({})));
    assert_eq!(p["current"], "optional");
    assert!(
        p["current_rule"]
            .as_str()
            .unwrap()
            .starts_with("top-level mode ("),
        "{p}"
    );

    let ours = |m: &BTreeMap<String, String>| -> Vec<String> {
        [
            &plain.name,
            &enrolled.name,
            &ruled.name,
            &member.name,
            &ghost,
            &w.alice.name,
            &w.bob.name,
        ]
        .iter()
        .map(|u| m[u.as_str()].clone())
        .collect()
    };
    for (mode, want) in [
        (
            "required",
            [
                "pending", "enforced", "exempt", "pending", "enforced", "exempt", "off",
            ],
        ),
        (
            "disabled",
            [
                "exempt", "exempt", "exempt", "pending", "exempt", "exempt", "off",
            ],
        ),
        (
            "optional",
            [
                "off", "enabled", "exempt", "pending", "enabled", "exempt", "off",
            ],
        ),
        (
            "disabled",
            [
                "exempt", "exempt", "exempt", "pending", "exempt", "exempt", "off",
            ],
        ),
        (
            "required",
            [
                "pending", "enforced", "exempt", "pending", "enforced", "exempt", "off",
            ],
        ),
    ] {
        let (p, before, after) = preview_then_set(&w, mode);
        assert_eq!(ours(&after), want, "{mode}: {p}");
        // Those decided by the default moved (their mode is new); the others kept theirs.
        let decided = [&plain.name, &enrolled.name, &ghost];
        for u in decided {
            assert_ne!(before[u.as_str()], after[u.as_str()], "{u} under {mode}");
        }
        assert!(p["moved"].as_u64().unwrap() >= 3, "{mode}: {p}");
        assert!(p["by_default"].as_u64().unwrap() >= 3, "{mode}: {p}");
        assert!(p["by_default"].as_u64().unwrap() < p["total"].as_u64().unwrap());
    }
    // by_default against the rule words of the rows (the test's own reading of them).
    let all = rows(&w);
    let by_rule = all
        .values()
        .filter(|(_, _, rule, _)| {
            rule.starts_with("top-level mode (") || rule.starts_with("built-in default")
        })
        .count() as u64;
    let p = ok(&w.call(None, "PreviewDefaultMode", json!(["optional"]))).clone();
    assert_eq!(p["by_default"], by_rule, "{p}");

    // Refused: a plain user (nothing learned), a bad mode.
    let r = w.call(Some(&w.alice), "PreviewDefaultMode", json!(["optional"]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains(&w.admins.name),
        "{r}"
    );
    for bad in ["sometimes", "", "Required"] {
        let r = w.call(Some(&w.admin), "PreviewDefaultMode", json!([bad]));
        assert_eq!(err(&r), "InvalidArgument", "{bad:?}: {r}");
    }

    // A policy.d file's own mode outranks the main file's: the preview refuses as
    // SetDefaultMode does, with the same words, except for the mode that file sets (which
    // moves nobody).
    std::fs::write(dropins.join("60-mode.toml"), "\n\nmode = \"disabled\"\n").unwrap();
    let policy_before = std::fs::read(&w.policy).unwrap();
    let preview = w.call(Some(&w.admin), "PreviewDefaultMode", json!(["optional"]));
    let set = w.call(Some(&w.admin), "SetDefaultMode", json!(["optional"]));
    assert_eq!(err(&preview), "Forbidden", "{preview}");
    assert_eq!(preview, set);
    assert!(
        preview["message"]
            .as_str()
            .unwrap()
            .contains("60-mode.toml:3"),
        "{preview}"
    );
    assert_eq!(std::fs::read(&w.policy).unwrap(), policy_before);
    let p = ok(&w.call(Some(&w.admin), "PreviewDefaultMode", json!(["disabled"]))).clone();
    assert_eq!(p["current"], "disabled");
    assert!(
        p["current_rule"]
            .as_str()
            .unwrap()
            .contains("policy.d/60-mode.toml:3"),
        "{p}"
    );
    assert_eq!((&p["moved"], &p["transitions"]), (&json!(0), &json!({})));
    std::fs::remove_file(dropins.join("60-mode.toml")).unwrap();

    // The CLI: `policy set-default MODE --dry-run`, in words and as JSON; nothing written.
    let twofold = w.dir.install(&bin("twofold"), "twofold");
    let dry = |args: &[&str]| {
        let o = output(as_user(Some(&w.admin), &twofold, &w.bus).args(args));
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let p = ok(&w.call(None, "PreviewDefaultMode", json!(["optional"]))).clone();
    let text = dry(&["policy", "set-default", "optional", "--dry-run"]);
    assert!(
        text.contains(&format!(
            "would change {} users (of {})",
            p["moved"], p["total"]
        )),
        "{text}"
    );
    assert!(text.contains("pending → off: "), "{text}");
    assert!(text.contains("Nothing was changed"), "{text}");
    let v: Value = serde_json::from_str(&dry(&[
        "--json",
        "policy",
        "set-default",
        "optional",
        "--dry-run",
    ]))
    .unwrap();
    assert_eq!(v["mode"], "optional");
    for key in [
        "current",
        "current_rule",
        "total",
        "by_default",
        "moved",
        "transitions",
    ] {
        assert_eq!(v[key], p[key], "{key}: {v}");
    }
    assert_eq!(std::fs::read(&w.policy).unwrap(), policy_before);
    assert_eq!(ours(&statuses(&rows(&w)))[0], "pending");
}
