/* twofold console: the confirmation dialog every admin action goes through, and the inline
 * alerts. All text is set with textContent. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;

    /* Opens a modal: `title`, `intro` (text), `items` (texts, one per change), `note`;
     * resolves true when confirmed, false when cancelled. */
    tf.confirm = function ({ title, intro, items, note, confirmText, danger, id }) {
        return new Promise(resolve => {
            const previous = document.activeElement;
            const close = answer => {
                backdrop.remove();
                document.removeEventListener("keydown", onKey);
                if (previous && previous.focus)
                    previous.focus();
                resolve(answer);
            };
            const onKey = event => {
                if (event.key === "Escape")
                    close(false);
            };
            const ok = tf.el("button", {
                className: "pf-c-button " + (danger ? "pf-m-danger" : "pf-m-primary"),
                id: "tf-dialog-confirm",
                onclick: () => close(true),
            }, confirmText || _("Confirm"));
            const cancel = tf.el("button", { className: "pf-c-button pf-m-link", id: "tf-dialog-cancel", onclick: () => close(false) }, _("Cancel"));
            const list = (items && items.length)
                ? tf.el("ul", { className: "tf-dialog-changes" }, items.map(t => tf.el("li", {}, t)))
                : null;
            const dialog = tf.el("div", { className: "tf-modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "tf-dialog-title", id: id || "tf-dialog" }, [
                tf.el("h2", { id: "tf-dialog-title", className: "tf-modal-title" }, title),
                tf.el("div", { className: "tf-modal-body" }, [
                    intro ? tf.el("p", { id: "tf-dialog-intro" }, intro) : null,
                    list,
                    note ? tf.el("p", { className: "tf-dialog-note" }, note) : null,
                ]),
                tf.el("div", { className: "tf-modal-footer" }, [ok, cancel]),
            ]);
            const backdrop = tf.el("div", { className: "tf-backdrop" }, dialog);
            document.body.appendChild(backdrop);
            document.addEventListener("keydown", onKey);
            ok.focus();
        });
    };

    /* An inline alert in `container` (replacing what was there); `kind`: danger, info, success. */
    tf.alert = function (container, kind, title, detail) {
        if (!title) {
            container.replaceChildren();
            container.hidden = true;
            return;
        }
        container.hidden = false;
        container.replaceChildren(tf.el("div", { className: "pf-c-alert pf-m-inline pf-m-" + kind, role: "alert" }, [
            tf.el("p", { className: "pf-c-alert__title" }, title),
            detail ? tf.el("p", { className: "pf-c-alert__description" }, detail) : null,
        ]));
    };
})(window.twofold);
