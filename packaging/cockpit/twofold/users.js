/* twofold console: the admin's users table. Rows come a page at a time from the daemon
 * (FindUsers: name prefix + statuses, by name after a cursor), so the first rows show at once
 * with 100,000 users and a search asks only for the names it matches. Sorting is over the rows
 * loaded so far (the page says so). Actions go through a confirmation that says what changes. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;
    const PAGE = 100;
    const SEARCH_DELAY = 300;

    const COLUMNS = [
        { key: "user", label: _("Name") },
        { key: "status", label: _("Status") },
        { key: "override_mode", label: _("Override") },
        { key: "rule", label: _("Deciding rule") },
        { key: "enrolled_at", label: _("Enrolled since") },
        { key: "authenticators", label: _("Authenticators") },
        { key: "last_login", label: _("Last login") },
        { key: "recovery_codes_left", label: _("Recovery codes") },
    ];

    const override = u => u.override_mode || _("none");

    /* Each action: its method on the admin client and what it changes for one user, in words. */
    tf.ACTIONS = {
        require: {
            label: _("Require"), method: "require",
            change: u => cockpit.format(_("$0: $1 → $2 (override: $3 → required)"), u.user, tf.word(u.status), tf.word(tf.statusFor("required", u.enrolled)), override(u)),
        },
        exempt: {
            label: _("Exempt"), method: "exempt",
            change: u => cockpit.format(_("$0: $1 → $2 (override: $3 → disabled; no code asked at login)"), u.user, tf.word(u.status), tf.word("exempt"), override(u)),
        },
        allow: {
            label: _("Allow (optional)"), method: "allow",
            change: u => cockpit.format(_("$0: $1 → $2 (override: $3 → optional)"), u.user, tf.word(u.status), tf.word(tf.statusFor("optional", u.enrolled)), override(u)),
        },
        inherit: {
            label: _("Inherit policy"), method: "clearOverride",
            change: u => u.override_mode
                ? cockpit.format(_("$0: override $1 removed; the policy's rules decide again (now $2; the new status is shown once done)"), u.user, u.override_mode, tf.word(u.status))
                : cockpit.format(_("$0: has no override; nothing changes (stays $1)"), u.user, tf.word(u.status)),
        },
        reset: {
            label: _("Reset"), method: "reset", danger: true,
            change: u => u.enrolled
                ? cockpit.format(_("$0: enrollment and $1 unused recovery codes deleted; $2 → $3 (enrolls again)"), u.user, String(u.recovery_codes_left || 0), tf.word(u.status), tf.word(tf.statusFor(u.mode, false)))
                : cockpit.format(_("$0: not enrolled; a pending enrollment is dropped, status stays $1"), u.user, tf.word(u.status)),
        },
    };

    tf.UsersView = function (admin, root, onChanged) {
        const state = {
            rows: [], next: "", prefix: "", statuses: new Set(), sort: { key: "user", dir: 1 },
            selected: new Set(), seq: 0, timer: null,
        };
        const $ = sel => root.querySelector(sel);
        const tbody = $("#tf-users tbody");
        const alertBox = $("#tf-users-alert");

        /* One page after `after`; with a status filter the daemon may answer a page with no
         * row but a cursor (it reads the names in batches): then the next one, a few times. */
        function fetchPage(after, tries) {
            return admin.findUsers(state.prefix, Array.from(state.statuses), after, PAGE).then(page =>
                (page.rows.length === 0 && page.next && tries > 1) ? fetchPage(page.next, tries - 1) : page);
        }

        /* Loads the first page for the current search (fresh) or the next one. */
        function load(fresh) {
            const seq = ++state.seq;
            root.dataset.loading = "1";
            const after = fresh ? "" : state.next;
            return fetchPage(after, 20).then(page => {
                if (seq !== state.seq)
                    return; /* a newer search superseded this one */
                if (fresh) {
                    state.rows = [];
                    state.selected.clear();
                }
                state.rows = state.rows.concat(page.rows);
                state.next = page.next;
                tf.alert(alertBox, null);
                render();
            }, error => {
                if (seq !== state.seq)
                    return;
                if (fresh) {
                    state.rows = [];
                    state.next = "";
                    render();
                }
                tf.alert(alertBox, "danger", _("The users could not be listed"), tf.errorText(error));
            }).finally(() => {
                if (seq === state.seq) {
                    delete root.dataset.loading;
                    /* what the table shows (read by the browser test) */
                    root.dataset.query = state.prefix + "|" + Array.from(state.statuses).sort().join(",");
                }
            });
        }

        function compare(a, b) {
            const key = state.sort.key;
            const va = a[key], vb = b[key];
            let order;
            if (key === "status")
                order = tf.STATUSES.indexOf(va) - tf.STATUSES.indexOf(vb);
            else if (typeof va === "number" || typeof vb === "number")
                order = (va === undefined ? -1 : va) - (vb === undefined ? -1 : vb);
            else
                order = String(va || "").localeCompare(String(vb || ""));
            return order * state.sort.dir || a.user.localeCompare(b.user);
        }

        function overrideCell(u) {
            if (!u.override_mode)
                return "—";
            return cockpit.format(_("$0 by $1, $2"), u.override_mode, u.override_by || "?", tf.formatTime(u.override_at));
        }

        function rowFor(u) {
            const box = tf.el("input", {
                type: "checkbox", className: "tf-select", checked: state.selected.has(u.user),
                "aria-label": cockpit.format(_("Select $0"), u.user),
                onchange: e => { e.target.checked ? state.selected.add(u.user) : state.selected.delete(u.user); updateBulk() },
            });
            const menuButton = tf.el("button", {
                className: "pf-c-button pf-m-plain tf-kebab", "aria-label": cockpit.format(_("Actions for $0"), u.user),
                onclick: e => openMenu(e.currentTarget, [u]),
            }, "⋮");
            const last = u.last_login ? tf.formatTime(u.last_login) + (u.last_login_from ? " " + cockpit.format(_("from $0"), u.last_login_from) : "") : "—";
            return tf.el("tr", { dataset: { user: u.user, status: u.status } }, [
                tf.el("td", { className: "tf-check" }, box),
                tf.el("td", { className: "tf-name" }, u.user),
                tf.el("td", { className: "tf-status-cell" }, tf.statusLabel(u.status)),
                tf.el("td", { className: "tf-override" }, overrideCell(u)),
                tf.el("td", { className: "tf-rule" }, u.rule || ""),
                tf.el("td", {}, u.enrolled ? tf.formatTime(u.enrolled_at) : "—"),
                tf.el("td", { className: "tf-num tf-auths" }, u.enrolled && u.authenticators !== undefined ? String(u.authenticators) : "—"),
                tf.el("td", {}, last),
                tf.el("td", { className: "tf-num" }, u.enrolled && u.recovery_codes_left !== undefined ? String(u.recovery_codes_left) : "—"),
                tf.el("td", { className: "tf-actions" }, menuButton),
            ]);
        }

        function render() {
            const rows = state.rows.slice().sort(compare);
            tbody.replaceChildren(...rows.map(rowFor));
            if (rows.length === 0)
                tbody.appendChild(tf.el("tr", { className: "tf-empty" }, tf.el("td", { colspan: "10" },
                    state.prefix || state.statuses.size ? _("No user matches.") : _("No users."))));
            for (const th of root.querySelectorAll("#tf-users th[data-sort]")) {
                const on = th.dataset.sort === state.sort.key;
                th.setAttribute("aria-sort", on ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
            }
            $("#tf-more").hidden = !state.next;
            $("#tf-count").textContent = cockpit.format(
                state.next ? _("$0 users loaded, more to load. Sorting orders the loaded rows only.")
                    : _("$0 users. Sorting orders the loaded rows."), String(state.rows.length));
            root.dataset.rows = String(state.rows.length);
            $("#tf-select-all").checked = rows.length > 0 && rows.every(u => state.selected.has(u.user));
            updateBulk();
        }

        function updateBulk() {
            const n = state.selected.size;
            for (const b of root.querySelectorAll(".tf-bulk"))
                b.disabled = n === 0;
            $("#tf-selected").textContent = n ? cockpit.format(cockpit.ngettext("$0 selected", "$0 selected", n), String(n)) : "";
        }

        /* A row changed (an action's answer, or a signal followed by GetUser). */
        function update(info) {
            const i = state.rows.findIndex(u => u.user === info.user);
            if (i < 0)
                return false;
            state.rows[i] = info;
            render();
            return true;
        }

        /* The dropdown of actions for `users`, under `anchor`. */
        function openMenu(anchor, users) {
            closeMenu();
            const items = Object.entries(tf.ACTIONS).map(([name, action]) =>
                tf.el("li", {}, tf.el("button", {
                    className: "tf-menu-item" + (action.danger ? " tf-danger" : ""), dataset: { action: name },
                    onclick: () => { closeMenu(); run(name, users) },
                }, action.label)));
            const menu = tf.el("ul", { className: "tf-menu", id: "tf-menu", role: "menu" }, items);
            anchor.parentNode.appendChild(menu);
            setTimeout(() => document.addEventListener("click", closeMenu, { once: true }), 0);
        }
        function closeMenu() {
            const m = document.getElementById("tf-menu");
            if (m)
                m.remove();
        }

        /* Confirms and runs `name` for `users` (row objects), one call each. */
        function run(name, users) {
            const action = tf.ACTIONS[name];
            const title = users.length === 1
                ? cockpit.format(_("$0: $1?"), action.label, users[0].user)
                : cockpit.format(_("$0: $1 users?"), action.label, String(users.length));
            return tf.confirm({
                title, id: "tf-dialog",
                intro: _("This changes:"),
                items: users.map(action.change),
                note: name === "reset" ? _("Their authenticator stops working here; recovery codes are deleted too.") : null,
                confirmText: action.label, danger: action.danger,
            }).then(ok => {
                if (!ok)
                    return;
                root.dataset.busy = "1";
                const failures = [];
                return users.reduce((p, u) => p.then(() => admin[action.method](u.user)
                        .then(info => update(info), error => failures.push(u.user + ": " + tf.errorText(error)))),
                Promise.resolve()).then(() => {
                    if (failures.length)
                        tf.alert(alertBox, "danger", _("Not every change was made"), failures.join("\n"));
                    else
                        tf.alert(alertBox, null);
                    onChanged();
                }).finally(() => delete root.dataset.busy);
            });
        }

        /* Wiring of the toolbar and the header. */
        $("#tf-search").addEventListener("input", e => {
            clearTimeout(state.timer);
            state.timer = setTimeout(() => { state.prefix = e.target.value.trim(); load(true) }, SEARCH_DELAY);
        });
        const chips = $("#tf-filter");
        for (const status of tf.STATUSES) {
            const chip = tf.el("button", {
                className: "tf-chip", dataset: { status }, "aria-pressed": "false",
                onclick: () => {
                    const on = !state.statuses.has(status);
                    on ? state.statuses.add(status) : state.statuses.delete(status);
                    chip.setAttribute("aria-pressed", String(on));
                    load(true);
                },
            }, [tf.statusIcon(status), tf.el("span", {}, tf.word(status))]);
            chips.appendChild(chip);
        }
        for (const th of root.querySelectorAll("#tf-users th[data-sort]")) {
            th.querySelector("button").addEventListener("click", () => {
                const key = th.dataset.sort;
                state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
                render();
            });
        }
        $("#tf-select-all").addEventListener("change", e => {
            for (const u of state.rows)
                e.target.checked ? state.selected.add(u.user) : state.selected.delete(u.user);
            render();
        });
        for (const b of root.querySelectorAll(".tf-bulk")) {
            b.addEventListener("click", () =>
                run(b.dataset.action, state.rows.filter(u => state.selected.has(u.user))));
        }
        $("#tf-more").addEventListener("click", () => load(false));

        return {
            load,
            update,
            has: user => state.rows.some(u => u.user === user),
            columns: COLUMNS,
        };
    };
})(window.twofold);
