/* twofold console: the caller's own page (every user): status, enrollment with a QR code,
 * confirmation, recovery codes shown once, new recovery codes, turning 2FA off when allowed,
 * the authenticators (add another with a proof, rename, remove).
 * Every call goes through the client without administrative access, so it acts on the
 * logged-in user. The secret is only ever in the enrollment panel while it is open: never in
 * the URL, storage or the console, and removed from the page once confirmed or cancelled. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;

    tf.OwnView = function (self, root) {
        const $ = sel => root.querySelector(sel);
        const alertBox = $("#tf-own-alert");
        let info = null;
        let expiry = null;
        let proofAction = null;

        function show(panel) {
            for (const p of root.querySelectorAll(".tf-own-panel"))
                p.hidden = p.id !== panel;
        }

        /* Forgets the pending secret: out of the page and out of this script's variables. */
        function clearSecret() {
            clearTimeout(expiry);
            $("#tf-qr").replaceChildren();
            $("#tf-key").textContent = "";
            $("#tf-code").value = "";
            delete root.dataset.enrolling;
            delete root.dataset.adding;
        }

        function refresh() {
            return self.getStatus().then(i => {
                info = i;
                $("#tf-own-status").replaceChildren(tf.statusLabel(i.status));
                $("#tf-own-user").textContent = i.user;
                $("#tf-own-rule").textContent = cockpit.format(_("Mode $0, decided by $1"), i.mode, i.rule);
                const facts = [];
                if (i.enrolled)
                    facts.push(cockpit.format(_("Set up on $0; $1 authenticators; $2 recovery codes left."), tf.formatTime(i.enrolled_at), String(i.authenticators || 0), String(i.recovery_codes_left || 0)));
                if (i.status === "pending" && i.deadline)
                    facts.push(cockpit.format(_("Set it up before $0, or logins are refused."), tf.formatTime(i.deadline)));
                if (i.last_login)
                    facts.push(cockpit.format(_("Last login with a code: $0."), tf.formatTime(i.last_login)));
                $("#tf-own-facts").textContent = facts.join(" ");
                $("#tf-enroll").hidden = i.enrolled;
                $("#tf-regen").hidden = !i.enrolled;
                $("#tf-disable").hidden = !i.enrolled;
                $("#tf-disable").disabled = i.mode === "required";
                $("#tf-disable").title = i.mode === "required" ? _("2FA is required for you: it cannot be turned off.") : "";
                root.dataset.status = i.status;
                loadAuthenticators();
            }, error => tf.alert(alertBox, "danger", _("Your status could not be read"), tf.errorText(error)));
        }

        /* Shows a pending secret ([uri, secret, label, expires_in]) in the enrollment panel. */
        function present(enrollment) {
            const uri = enrollment[0];
            const secret = enrollment[1];
            const label = enrollment[2];
            const seconds = Number(enrollment[3]);
            $("#tf-qr").replaceChildren(tf.qrSvg(uri, 4));
            $("#tf-key").textContent = secret.replace(/(.{4})/g, "$1 ").trim();
            $("#tf-enroll-label").textContent = cockpit.format(_("Account shown in the app: $0. The key expires in $1 minutes."), label, String(Math.round(seconds / 60)));
            root.dataset.enrolling = "1";
            $("#tf-enroll").hidden = true;
            show("tf-enroll-panel");
            $("#tf-code").focus();
            if (Number.isFinite(seconds) && seconds > 0) {
                expiry = setTimeout(() => {
                    clearSecret();
                    show(null);
                    tf.alert(alertBox, "info", _("The enrollment expired; start again."));
                }, Math.min(seconds * 1000, 2147483647));
            }
        }

        function begin() {
            tf.alert(alertBox, null);
            self.beginEnrollment(false, "").then(present).catch(error => {
                clearSecret();
                tf.alert(alertBox, "danger", _("Enrollment could not start"), tf.errorText(error));
            });
        }

        /* The authenticators' table: names are text, never markup. */
        function loadAuthenticators() {
            const block = $("#tf-auths-block");
            if (!info || !info.enrolled) {
                block.hidden = true;
                $("#tf-auths tbody").replaceChildren();
                return;
            }
            self.listAuthenticators().then(list => {
                const rows = list.map(a => tf.el("tr", { dataset: { id: String(a.id) } }, [
                    tf.el("td", { className: "tf-auth-name" }, a.name),
                    tf.el("td", {}, tf.formatTime(a.added_at)),
                    tf.el("td", { className: "tf-muted" }, cockpit.format(_("$0 digits, $1 s"), String(a.digits), String(a.period))),
                    tf.el("td", { className: "tf-actions" }, [
                        tf.el("button", {
                            className: "pf-c-button pf-m-link tf-auth-rename",
                            onclick: () => askProof("rename:" + a.id, cockpit.format(_("A new name for $0:"), a.name), { name: a.name, code: false }),
                        }, _("Rename…")),
                        tf.el("button", {
                            className: "pf-c-button pf-m-link tf-auth-remove",
                            onclick: () => askProof("remove:" + a.id, list.length === 1
                                ? cockpit.format(_("$0 is your only authenticator: removing it turns two-factor authentication off. Type a code from an app (or a recovery code)."), a.name)
                                : cockpit.format(_("Remove $0: its codes stop working. Type a code from any of your apps (or a recovery code)."), a.name)),
                        }, _("Remove…")),
                    ]),
                ]));
                $("#tf-auths tbody").replaceChildren(...rows);
                block.hidden = false;
            }, error => tf.alert(alertBox, "danger", _("Your authenticators could not be read"), tf.errorText(error)));
        }

        function showCodes(codes, title) {
            $("#tf-codes-title").textContent = title;
            $("#tf-codes").replaceChildren(...codes.map(c => tf.el("li", {}, tf.el("code", {}, c))));
            show("tf-codes-panel");
        }

        $("#tf-enroll").addEventListener("click", begin);
        $("#tf-confirm").addEventListener("click", () => {
            const code = $("#tf-code").value.trim();
            const adding = root.dataset.adding;
            self.confirmEnrollment(code).then(codes => {
                clearSecret();
                if (adding) {
                    show(null);
                    tf.alert(alertBox, "success", cockpit.format(_("$0 is added: its codes log you in too."), adding));
                } else {
                    tf.alert(alertBox, "success", _("Two-factor authentication is set up."));
                    showCodes(codes, _("Your recovery codes, shown this once: keep them somewhere safe. Each logs you in once in place of a code."));
                }
                refresh();
            }, error => {
                $("#tf-code").value = "";
                tf.alert(alertBox, "danger", _("The code was not accepted"), tf.errorText(error));
            });
        });
        $("#tf-cancel").addEventListener("click", () => {
            clearSecret();
            show(null);
            self.cancelEnrollment().then(refresh, error => tf.alert(alertBox, "danger", _("Cancel failed"), tf.errorText(error)));
        });
        $("#tf-codes-done").addEventListener("click", () => {
            $("#tf-codes").replaceChildren();
            show(null);
        });

        /* Regenerate, disable, add and remove ask for a current code or a recovery code first;
         * add and rename ask for a name (`want.name`: the name to start from); rename asks no
         * code (`want.code` false). */
        function askProof(action, title, want) {
            want = want || {};
            proofAction = action;
            tf.alert(alertBox, null);
            $("#tf-proof-title").textContent = title;
            $("#tf-proof").value = "";
            $("#tf-proof").hidden = want.code === false;
            $("#tf-proof-name").hidden = want.name === undefined;
            $("#tf-proof-name").value = want.name || "";
            show("tf-proof-panel");
            (want.name === undefined ? $("#tf-proof") : $("#tf-proof-name")).focus();
        }
        $("#tf-regen").addEventListener("click", () => askProof("regen", _("New recovery codes: the old ones stop working. Type a code from your app (or a recovery code).")));
        $("#tf-disable").addEventListener("click", () => askProof("disable", _("Turn two-factor authentication off: logins ask for no code any more. Type a code from your app (or a recovery code).")));
        $("#tf-add").addEventListener("click", () => askProof("add", _("Another authenticator (a second phone, a tablet, a token): give it a name, and type a code from an app you have (or a recovery code)."), { name: "" }));
        $("#tf-proof-cancel").addEventListener("click", () => { $("#tf-proof").value = ""; show(null) });
        $("#tf-proof-ok").addEventListener("click", () => {
            const code = $("#tf-proof").value.trim();
            const name = $("#tf-proof-name").value;
            $("#tf-proof").value = "";
            const [verb, id] = proofAction.split(":");
            let done;
            if (verb === "regen") {
                done = self.regenerateRecoveryCodes(code).then(codes => showCodes(codes, _("Your new recovery codes, shown this once.")));
            } else if (verb === "disable") {
                done = self.disable(code).then(() => {
                    show(null);
                    tf.alert(alertBox, "success", _("Two-factor authentication is off."));
                });
            } else if (verb === "add") {
                done = self.addAuthenticator(name, code).then(enrollment => {
                    present(enrollment);
                    root.dataset.adding = name;
                });
            } else if (verb === "rename") {
                done = self.renameAuthenticator(id, name).then(() => show(null));
            } else {
                done = self.removeAuthenticator(id, code).then(i => {
                    show(null);
                    tf.alert(alertBox, "success", i.enrolled ? _("The authenticator is removed.") : _("The authenticator is removed; two-factor authentication is off."));
                });
            }
            done.then(() => verb === "add" ? null : refresh(), error => tf.alert(alertBox, "danger", _("Refused"), tf.errorText(error)));
        });

        show(null);
        return { refresh, info: () => info };
    };
})(window.twofold);
