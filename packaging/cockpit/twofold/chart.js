/* twofold console: the distribution of statuses (the daemon's Summary), drawn here as an SVG
 * donut with a legend of counts and percentages. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;

    /* One decimal, as the legend shows it. */
    tf.percent = (count, total) => (total > 0 ? (100 * count / total).toFixed(1) : "0.0");

    /* Draws `summary` ({status: count, total}) into `container`. */
    tf.drawChart = function (container, summary) {
        const total = Number(summary.total || 0);
        const radius = 15.915; /* circumference 100 */
        const parts = [];
        let offset = 25; /* start at 12 o'clock */
        const rings = [tf.svg("circle", { cx: "21", cy: "21", r: String(radius), fill: "none", stroke: "#f0f0f0", "stroke-width": "6" })];
        for (const status of tf.STATUSES) {
            const count = Number(summary[status] || 0);
            parts.push({ status, count });
            if (total === 0 || count === 0)
                continue;
            const share = 100 * count / total;
            const ring = tf.svg("circle", {
                cx: "21", cy: "21", r: String(radius), fill: "none",
                stroke: tf.statusInfo[status].colour, "stroke-width": "6",
                "stroke-dasharray": share + " " + (100 - share),
                "stroke-dashoffset": String(offset),
            });
            ring.appendChild(tf.svg("title", {}, [document.createTextNode(tf.word(status) + ": " + count)]));
            rings.push(ring);
            offset -= share;
        }
        const middle = tf.svg("text", { x: "21", y: "20.5", "text-anchor": "middle", class: "tf-chart-total" }, [document.createTextNode(String(total))]);
        const under = tf.svg("text", { x: "21", y: "26", "text-anchor": "middle", class: "tf-chart-total-label" }, [document.createTextNode(_("users"))]);
        const donut = tf.svg("svg", { viewBox: "0 0 42 42", width: "160", height: "160", class: "tf-donut", role: "img", "aria-label": _("Distribution of 2FA statuses") }, rings.concat([middle, under]));

        const rows = parts.map(p => tf.el("tr", { dataset: { status: p.status, count: String(p.count) } }, [
            tf.el("td", {}, tf.statusLabel(p.status)),
            tf.el("td", { className: "tf-num tf-chart-count" }, String(p.count)),
            tf.el("td", { className: "tf-num tf-chart-percent" }, tf.percent(p.count, total) + " %"),
        ]));
        const legend = tf.el("table", { className: "tf-legend" }, [
            tf.el("thead", {}, tf.el("tr", {}, [
                tf.el("th", {}, _("Status")), tf.el("th", { className: "tf-num" }, _("Users")), tf.el("th", { className: "tf-num" }, _("Share")),
            ])),
            tf.el("tbody", {}, rows),
        ]);
        container.replaceChildren(donut, legend);
        container.dataset.total = String(total);
    };
})(window.twofold);
