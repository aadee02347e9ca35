/* twofold console: the five statuses (icon, word, colour), the DOM helper every view uses
 * (text always through textContent, never markup built from data), and formatting. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    const _ = cockpit.gettext;
    const SVG = "http://www.w3.org/2000/svg";

    /* The statuses in the order of the brief's table. */
    tf.STATUSES = ["pending", "enforced", "enabled", "off", "exempt"];

    tf.statusInfo = {
        pending: { word: _("Pending"), colour: "#f0ab00", help: _("Required, not yet set up: must enroll at the next login") },
        enforced: { word: _("Enforced"), colour: "#3e8635", help: _("Required and set up") },
        enabled: { word: _("Enabled"), colour: "#0066cc", help: _("Set up by choice (optional)") },
        off: { word: _("Off"), colour: "#8a8d90", help: _("Optional, not set up") },
        exempt: { word: _("Exempt"), colour: "#6753ac", help: _("Disabled for this user: no code asked") },
    };

    /* el("td", {className: "x"}, [child or text, ...]): text goes in as text nodes. */
    tf.el = function (tag, props, children) {
        const node = document.createElement(tag);
        for (const [key, value] of Object.entries(props || {})) {
            if (key === "dataset")
                Object.assign(node.dataset, value);
            else if (key.startsWith("on"))
                node.addEventListener(key.slice(2), value);
            else if (key === "className" || key === "textContent" || key === "title" ||
                     key === "type" || key === "value" || key === "disabled" || key === "checked" ||
                     key === "hidden" || key === "placeholder")
                node[key] = value;
            else
                node.setAttribute(key, value);
        }
        for (const child of [].concat(children || [])) {
            if (child === null || child === undefined)
                continue;
            node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
        }
        return node;
    };

    function svg(tag, attrs, children) {
        const node = document.createElementNS(SVG, tag);
        for (const [key, value] of Object.entries(attrs || {}))
            node.setAttribute(key, value);
        for (const child of children || [])
            node.appendChild(child);
        return node;
    }
    tf.svg = svg;

    /* The shapes of each icon, in a 16×16 box. */
    const SHAPES = {
        /* an hourglass: must act */
        pending: c => [svg("path", { d: "M4 1.5h8M4 14.5h8M5 1.5c0 4 6 4.5 6 6.5s-6 2.5-6 6.5M11 1.5c0 4-6 4.5-6 6.5s6 2.5 6 6.5", fill: "none", stroke: c, "stroke-width": "1.6", "stroke-linecap": "round" })],
        /* a shield with a check: required and set up */
        enforced: c => [svg("path", { d: "M8 .8 14 3v4.6c0 3.6-2.6 6.4-6 7.6-3.4-1.2-6-4-6-7.6V3z", fill: c }),
                        svg("path", { d: "m5 8 2.1 2.1L11.2 6", fill: "none", stroke: "#fff", "stroke-width": "1.8", "stroke-linecap": "round", "stroke-linejoin": "round" })],
        /* a check in a circle: set up by choice */
        enabled: c => [svg("circle", { cx: "8", cy: "8", r: "7", fill: c }),
                       svg("path", { d: "m4.8 8.2 2.2 2.2 4.2-4.6", fill: "none", stroke: "#fff", "stroke-width": "1.8", "stroke-linecap": "round", "stroke-linejoin": "round" })],
        /* an empty circle: nothing set up */
        off: c => [svg("circle", { cx: "8", cy: "8", r: "6.2", fill: "none", stroke: c, "stroke-width": "1.6" }),
                   svg("path", { d: "M5 8h6", stroke: c, "stroke-width": "1.6", "stroke-linecap": "round" })],
        /* a barred circle: exempt */
        exempt: c => [svg("circle", { cx: "8", cy: "8", r: "6.2", fill: "none", stroke: c, "stroke-width": "1.8" }),
                      svg("path", { d: "M3.6 12.4 12.4 3.6", stroke: c, "stroke-width": "1.8" })],
    };

    tf.statusIcon = function (status) {
        const info = tf.statusInfo[status];
        const colour = info ? info.colour : "#8a8d90";
        const shapes = SHAPES[status] ? SHAPES[status](colour) : [svg("circle", { cx: "8", cy: "8", r: "6", fill: colour })];
        const icon = svg("svg", { class: "tf-status-icon", viewBox: "0 0 16 16", width: "16", height: "16", "aria-hidden": "true", "data-status": status }, shapes);
        return icon;
    };

    /* Icon + word, e.g. in a table cell. */
    tf.statusLabel = function (status) {
        const info = tf.statusInfo[status];
        return tf.el("span", { className: "tf-status", title: info ? info.help : "", dataset: { status } },
                     [tf.statusIcon(status), tf.el("span", { className: "tf-status-word" }, info ? info.word : status)]);
    };

    tf.formatTime = function (seconds) {
        if (seconds === undefined || seconds === null || seconds === "")
            return "—";
        const d = new Date(Number(seconds) * 1000);
        return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
    };

    /* What a user's status becomes when their effective mode becomes `mode`. */
    tf.statusFor = function (mode, enrolled) {
        if (mode === "required")
            return enrolled ? "enforced" : "pending";
        if (mode === "optional")
            return enrolled ? "enabled" : "off";
        return "exempt";
    };

    tf.word = status => (tf.statusInfo[status] ? tf.statusInfo[status].word : status);
})(window.twofold);
