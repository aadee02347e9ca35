/* twofold console: the account-wide default mode (SetDefaultMode). Before asking, the page asks
 * the daemon what the change would do (PreviewDefaultMode): the daemon resolves every user
 * against the policy as it is and with the new default, and answers how many users change
 * status (of how many), how (e.g. off → pending), and the default in force. The page counts
 * nothing itself. When the daemon cannot answer (or refuses: a policy.d file's own `mode`
 * outranks the main file's), the error is shown and the change is not offered. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;

    /* The preview's transitions ({"off>pending": 3}) as dialog lines, in a stable order. */
    tf.transitionItems = function (transitions) {
        return Object.keys(transitions || {}).sort()
                .map(key => {
                    const [from, to] = key.split(">");
                    const n = Number(transitions[key]);
                    return cockpit.format(cockpit.ngettext("$0 → $1: $2 user", "$0 → $1: $2 users", n),
                                          tf.word(from), tf.word(to), String(n));
                });
    };

    /* The card: returns {showCurrent}, which the page calls once the first rows and the chart
     * are asked for (the preview, like Summary, reads every user). */
    tf.DefaultModeView = function (admin, root, onChanged) {
        const select = root.querySelector("#tf-default-mode");
        const button = root.querySelector("#tf-default-apply");
        const alertBox = root.querySelector("#tf-default-alert");
        const now = root.querySelector("#tf-default-now");

        function showNow(p) {
            now.textContent = cockpit.format(_("Now: $0 ($1)."), p.current, p.current_rule);
        }

        /* The default in force, from the daemon (a preview of the mode selected, which moves
         * nobody's record: only its `current` is used here). */
        function showCurrent() {
            return admin.previewDefaultMode(select.value).then(p => {
                select.value = p.current;
                showNow(p);
            }, error => {
                now.textContent = cockpit.format(_("The default in force could not be read: $0"), tf.errorText(error));
            });
        }

        button.addEventListener("click", () => {
            const mode = select.value;
            const label = button.textContent;
            let stage = "count";
            button.disabled = true;
            root.dataset.counting = "1";
            button.textContent = _("Counting…");
            tf.alert(alertBox, null);
            admin.previewDefaultMode(mode).then(p => {
                button.textContent = label;
                delete root.dataset.counting;
                showNow(p);
                return tf.confirm({
                    id: "tf-default-dialog",
                    title: cockpit.format(_("Set the account-wide default to $0?"), mode),
                    intro: cockpit.format(cockpit.ngettext("This changes $0 user (of $1).", "This changes $0 users (of $1).", p.moved),
                                          String(p.moved), String(p.total)),
                    items: tf.transitionItems(p.transitions),
                    note: cockpit.format(_("Counted by the daemon from the policy, over all $0 users: $1 are decided by the default (now $2, from $3); the others are decided by an override or a [users] or [groups] rule, and keep their mode."),
                                         String(p.total), String(p.by_default), p.current, p.current_rule),
                    confirmText: _("Set default"),
                }).then(ok => {
                    if (!ok)
                        return;
                    stage = "set";
                    root.dataset.busy = "1";
                    return admin.setDefaultMode(mode).then(() => {
                        tf.alert(alertBox, "success", cockpit.format(_("The default is now $0."), mode));
                        onChanged(true);
                        return showCurrent();
                    });
                });
            }).catch(error => tf.alert(alertBox, "danger",
                                       stage === "count"
                                           ? _("The change is not offered: the daemon did not count the users it moves")
                                           : _("The default was not changed"),
                                       tf.errorText(error)))
                    .finally(() => {
                        button.textContent = label;
                        delete root.dataset.counting;
                        delete root.dataset.busy;
                        button.disabled = false;
                    });
        });
        return { showCurrent };
    };
})(window.twofold);
