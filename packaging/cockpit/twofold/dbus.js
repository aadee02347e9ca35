/* twofold console: the D-Bus client of twofold-enrolld (org.twofold.Enroll1).
 *
 * The admin methods go through `adminClient(superuser)`: without superuser they are the
 * logged-in user's calls; with superuser "try" they use Cockpit's administrative access when
 * the session has it (root through the superuser bridge). `selfClient` never does, so the self
 * methods (which act on the caller's uid) act on the logged-in user and not on root. The daemon
 * decides who may do what; this file only carries the calls. Nothing here logs an argument or
 * an answer (secrets pass through it). */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const NAME = "org.twofold.Enroll1";
    const PATH = "/org/twofold/Enroll1";
    const IFACE = "org.twofold.Enroll1.Manager";
    const ERROR_PREFIX = "org.twofold.Enroll1.Error.";

    /* An a{sv} as Cockpit gives it ({key: {t, v}}) → a plain object. */
    function unwrap(dict) {
        const out = {};
        for (const key of Object.keys(dict || {})) {
            const value = dict[key];
            out[key] = (value && typeof value === "object" && "v" in value) ? value.v : value;
        }
        return out;
    }

    /* The short error name (`PermissionDenied`) of a failed call, or its whole name. */
    tf.errorName = function (error) {
        const name = (error && error.name) || "";
        return name.startsWith(ERROR_PREFIX) ? name.slice(ERROR_PREFIX.length) : name;
    };

    /* A failed call in words for the page (always shown with textContent). */
    tf.errorText = function (error) {
        if (!error)
            return "";
        const name = tf.errorName(error);
        const message = error.message || error.problem || String(error);
        return name ? name + ": " + message : message;
    };

    function makeClient(options) {
        const client = cockpit.dbus(NAME, options);
        const call = (method, signature, args) =>
            client.call(PATH, IFACE, method, args, { type: signature });
        return { client, call };
    }

    /* The admin client: every method an admin calls, answers unwrapped. */
    tf.adminClient = function (superuser) {
        const { client, call } = makeClient(superuser ? { bus: "system", superuser: "try" } : { bus: "system" });
        const one = method => user => call(method, "s", [user]).then(r => unwrap(r[0]));
        return {
            /* The console ships with the daemon it talks to: no fallback for a daemon
             * without FindUsers. */
            findUsers: (prefix, statuses, after, limit) =>
                call("FindUsers", "sassu", [prefix, statuses, after, limit])
                        .then(r => ({ rows: r[0].map(unwrap), next: r[1] })),
            getUser: one("GetUser"),
            require: one("Require"),
            exempt: one("Exempt"),
            allow: one("Allow"),
            clearOverride: one("ClearOverride"),
            reset: one("Reset"),
            summary: () => call("Summary", "", []).then(r => r[0]),
            setDefaultMode: mode => call("SetDefaultMode", "s", [mode]),
            /* {current, current_rule, total, by_default, moved, transitions: {"off>pending": n}} */
            previewDefaultMode: mode => call("PreviewDefaultMode", "s", [mode]).then(r => {
                const p = unwrap(r[0]);
                p.transitions = p.transitions || {};
                return p;
            }),
            subscribe: () => call("Subscribe", "", []),
            /* `handler(user, status)` for both the broadcast UserChanged and the unicast
             * Changed; returns what stops listening. */
            onChange: function (handler) {
                const subs = ["UserChanged", "Changed"].map(member =>
                    client.subscribe({ path: PATH, interface: IFACE, member },
                                     (path, iface, signal, args) => handler(String(args[0]), String(args[1]))));
                return () => subs.forEach(s => s.remove());
            },
            close: () => client.close(),
        };
    };

    /* The caller's own client (never superuser). */
    tf.selfClient = function () {
        const { client, call } = makeClient({ bus: "system" });
        return {
            getStatus: () => call("GetStatus", "", []).then(r => unwrap(r[0])),
            /* [uri, secret, label, expires_in] (the struct's fields are the reply's four out
             * arguments); the caller drops it once shown. */
            beginEnrollment: (replace, proof) => call("BeginEnrollment", "bs", [replace, proof]),
            confirmEnrollment: code => call("ConfirmEnrollment", "s", [code]).then(r => r[0]),
            cancelEnrollment: () => call("CancelEnrollment", "", []).then(r => r[0]),
            disable: code => call("Disable", "s", [code]).then(r => unwrap(r[0])),
            regenerateRecoveryCodes: code =>
                call("RegenerateRecoveryCodes", "s", [code]).then(r => r[0]),
            listAuthenticators: () => call("ListAuthenticators", "", []).then(r => r[0].map(unwrap)),
            /* Like beginEnrollment's answer; ConfirmEnrollment then adds it (no recovery codes). */
            addAuthenticator: (name, proof) => call("AddAuthenticator", "ss", [name, proof]),
            renameAuthenticator: (which, name) =>
                call("RenameAuthenticator", "ss", [which, name]).then(r => unwrap(r[0])),
            removeAuthenticator: (which, proof) =>
                call("RemoveAuthenticator", "ss", [which, proof]).then(r => unwrap(r[0])),
            close: () => client.close(),
        };
    };
})(window.twofold);
