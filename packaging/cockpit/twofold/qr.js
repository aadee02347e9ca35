/* twofold console: a QR code drawn as SVG in the browser, from the vendored qrcode-generator
 * (MIT, qrcode-generator.LICENSE). Nothing leaves the page: the otpauth URI holds the secret. */
"use strict";

window.twofold = window.twofold || {};

(function (tf) {
    /* An <svg> of `text` (error correction M), `scale` pixels per module, 4 modules of quiet zone. */
    tf.qrSvg = function (text, scale) {
        /* global qrcode */
        qrcode.stringToBytes = qrcode.stringToBytesFuncs["UTF-8"];
        const qr = qrcode(0, "M");
        qr.addData(text, "Byte");
        qr.make();
        const n = qr.getModuleCount();
        const quiet = 4;
        const size = n + 2 * quiet;
        let d = "";
        for (let r = 0; r < n; r++) {
            for (let c = 0; c < n; c++) {
                if (qr.isDark(r, c))
                    d += "M" + (c + quiet) + " " + (r + quiet) + "h1v1h-1z";
            }
        }
        return tf.svg("svg", {
            viewBox: "0 0 " + size + " " + size, width: String(size * scale), height: String(size * scale),
            class: "tf-qr", role: "img", "shape-rendering": "crispEdges",
        }, [tf.svg("rect", { width: String(size), height: String(size), fill: "#fff" }),
            tf.svg("path", { d, fill: "#000" })]);
    };
})(window.twofold);
