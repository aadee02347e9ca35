/* twofold console: the page. Every user gets their own page; a caller the daemon lets use the
 * admin methods (Summary answers) also gets the users table, the chart and the default mode,
 * kept current by the daemon's signals (UserChanged broadcast, Changed after Subscribe). */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;

    function selectTab(name) {
        for (const tab of document.querySelectorAll(".tf-tab"))
            tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
        document.getElementById("tf-admin").hidden = name !== "users";
        document.getElementById("tf-own").hidden = name !== "own";
    }

    function start() {
        document.title = _("Two-factor authentication");
        cockpit.translate();
        const self = tf.selfClient();
        const own = tf.OwnView(self, document.getElementById("tf-own"));
        const ownReady = own.refresh();

        /* Who answers the admin calls: the logged-in user when the daemon lets them (an admin
         * by the policy's group or polkit: changes are then recorded under their own name),
         * otherwise Cockpit's administrative access (superuser "try": root, recorded as root).
         * One row asked is the probe; PermissionDenied from both means the own page only. */
        let admin = tf.adminClient(false);
        const probe = client => client.findUsers("", [], "", 1).then(() => client);
        const chosen = probe(admin).catch(error => {
            if (tf.errorName(error) !== "PermissionDenied")
                return Promise.reject(error);
            admin.close();
            admin = tf.adminClient(true);
            return probe(admin);
        });

        /* Then the table's first page, then the chart (Summary, which reads every user), so the
         * first rows do not wait for the count of 100,000 users. */
        const adminReady = chosen.then(admin => {
            const root = document.getElementById("tf-admin");
            const chart = document.getElementById("tf-chart");
            const drawSummary = () => admin.summary().then(s => {
                tf.drawChart(chart, s);
                chart.dataset.ready = "1";
            }, error => tf.alert(chart, "danger", _("The distribution could not be read"), tf.errorText(error)));
            let pending = null;
            const refreshSummary = () => {
                clearTimeout(pending);
                pending = setTimeout(drawSummary, 200);
            };
            const users = tf.UsersView(admin, root, refreshSummary);
            const defaults = tf.DefaultModeView(admin, root, fresh => {
                refreshSummary();
                if (fresh)
                    users.load(true);
            });
            /* Live: both signals mean "this user changed"; the row is read again (GetUser), so a
             * signal seen twice changes nothing. Listening starts before the first reads. */
            admin.onChange(user => {
                if (users.has(user))
                    admin.getUser(user).then(users.update, () => {});
                refreshSummary();
                const me = own.info();
                if (me && me.user === user)
                    own.refresh();
            });
            /* The unicast Changed (UserChanged is broadcast to root and twofold-admin only).
             * The subscription belongs to the bridge's bus
             * connection, which every page and tab of this Cockpit session shares: it is not
             * withdrawn when this page goes (that would stop another tab's updates); the daemon
             * forgets it when the session ends and its connection leaves the bus. */
            admin.subscribe().catch(() => {});
            document.getElementById("tf-tabs").hidden = false;
            selectTab("users");
            /* The chart after the first rows: Summary reads every user, and the daemon answers
             * it while the page waits for nothing else; then the default in force (its preview
             * reads every user too). */
            return users.load(true).then(() => {
                drawSummary().then(defaults.showCurrent);
                return "admin";
            });
        }, error => {
            if (tf.errorName(error) !== "PermissionDenied")
                tf.alert(document.getElementById("tf-own-alert"), "warning",
                         _("The administration view is not available"), tf.errorText(error));
            admin.close();
            selectTab("own");
            return "own";
        });

        for (const tab of document.querySelectorAll(".tf-tab"))
            tab.addEventListener("click", () => selectTab(tab.dataset.tab));

        Promise.all([adminReady, ownReady]).then(([view]) => {
            document.body.dataset.ready = view;
        });
    }

    document.addEventListener("DOMContentLoaded", start);
})(window.twofold);
