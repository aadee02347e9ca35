/* twofold console: the account-wide default mode (SetDefaultMode). Before asking, the page
 * counts exactly whom the change moves: every user is read (FindUsers pages of 1000, by name)
 * and counted when their deciding rule is the top-level `mode` of the main policy file or the
 * built-in default, and their mode differs from the new one. Users decided by an override, a
 * [users]/[groups]/[services] rule, or a policy.d file's own `mode` (which outranks the main
 * file) keep their mode. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;
    const BATCH = 1000;

    /* Whether a rule text (UserInfo.rule) is the default that SetDefaultMode writes. */
    tf.decidedByDefault = function (rule) {
        rule = String(rule || "");
        if (rule.startsWith("built-in default"))
            return true;
        return rule.startsWith("top-level ") && !rule.includes("/policy.d/");
    };

    /* {total, moved, transitions: {"off → pending": n}, current} for a new default `mode`. */
    tf.countDefaultChange = function (admin, mode, onProgress) {
        const result = { total: 0, moved: 0, transitions: {}, current: null, byDefault: 0 };
        const step = after => admin.findUsers("", [], after, BATCH).then(page => {
            for (const u of page.rows) {
                result.total += 1;
                if (!tf.decidedByDefault(u.rule))
                    continue;
                result.byDefault += 1;
                result.current = u.mode;
                if (u.mode === mode)
                    continue;
                result.moved += 1;
                const key = cockpit.format("$0 → $1", tf.word(u.status), tf.word(tf.statusFor(mode, u.enrolled)));
                result.transitions[key] = (result.transitions[key] || 0) + 1;
            }
            if (onProgress)
                onProgress(result.total);
            return page.next ? step(page.next) : result;
        });
        return step("");
    };

    tf.DefaultModeView = function (admin, root, onChanged) {
        const select = root.querySelector("#tf-default-mode");
        const button = root.querySelector("#tf-default-apply");
        const alertBox = root.querySelector("#tf-default-alert");
        const now = root.querySelector("#tf-default-now");

        /* The current default, as the first users it decides show it (the daemon has no call
         * that reads the policy's mode itself). */
        function showCurrent() {
            return admin.findUsers("", [], "", 100).then(page => {
                const u = page.rows.find(r => tf.decidedByDefault(r.rule));
                if (u) {
                    select.value = u.mode;
                    now.textContent = cockpit.format(_("Now: $0 ($1)."), u.mode, u.rule);
                } else {
                    now.textContent = "";
                }
            }, () => {});
        }
        showCurrent();
        button.addEventListener("click", () => {
            const mode = select.value;
            button.disabled = true;
            root.dataset.counting = "1";
            const label = button.textContent;
            /* 1,000 users a page: with 100,000 users this takes seconds, so it says how far. */
            const progress = n => { button.textContent = cockpit.format(_("Counting… $0 users read"), String(n)) };
            progress(0);
            tf.countDefaultChange(admin, mode, progress).then(c => {
                button.textContent = label;
                delete root.dataset.counting;
                const items = Object.entries(c.transitions).map(([k, n]) =>
                    cockpit.format(cockpit.ngettext("$0: $1 user", "$0: $1 users", n), k, String(n)));
                return tf.confirm({
                    id: "tf-default-dialog",
                    title: cockpit.format(_("Set the account-wide default to $0?"), mode),
                    intro: cockpit.format(cockpit.ngettext("This changes $0 user (of $1).", "This changes $0 users (of $1).", c.moved),
                                          String(c.moved), String(c.total)),
                    items,
                    note: cockpit.format(_("Counted just now over all $0 users from their deciding rule: $1 are decided by the default (top-level mode of the main policy file, or the built-in default)$2; the others are decided by an override, a [users], [groups] or [services] rule or a policy.d file, and keep their mode."),
                                         String(c.total), String(c.byDefault),
                                         c.current ? cockpit.format(_(", now $0"), c.current) : ""),
                    confirmText: _("Set default"),
                }).then(ok => {
                    if (!ok)
                        return;
                    root.dataset.busy = "1";
                    return admin.setDefaultMode(mode).then(() => {
                        tf.alert(alertBox, "success", cockpit.format(_("The default is now $0."), mode));
                        onChanged(true);
                        return showCurrent();
                    });
                });
            }).catch(error => tf.alert(alertBox, "danger", _("The default was not changed"), tf.errorText(error)))
                    .finally(() => {
                        button.textContent = label;
                        delete root.dataset.counting;
                        delete root.dataset.busy;
                        button.disabled = false;
                    });
        });
    };
})(window.twofold);
