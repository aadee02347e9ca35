#!/usr/bin/python3
"""The browser side of tests/console.rs: a headless Chromium driven through WebDriver
(chromedriver), answering one JSON command per stdin line with one JSON line on stdout.

The test (Rust) decides what to do and checks the answers against the daemon and the CLI; this
script only does what a person does in the page (type, click, read) and reports what the page
shows. Nothing here knows the expected results.

argv: BASE_URL SCRATCH_DIR
"""

import json
import sys
import tempfile
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = sys.argv[1].rstrip("/")
SCRATCH = sys.argv[2]
FRAME = "iframe[name='cockpit1:localhost/twofold']"


def new_driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1440,1200",
              "--user-data-dir=" + tempfile.mkdtemp(dir=SCRATCH, prefix="chromium-")]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_script_timeout(30)
    return d


driver = None


def wait(cond, timeout=30, what="condition"):
    try:
        # The login page replaces itself with the shell: an element found a moment ago may be
        # gone; that is "not yet", not an error.
        return WebDriverWait(driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=[StaleElementReferenceException]).until(lambda d: cond())
    except TimeoutException:
        raise RuntimeError("timed out waiting for " + what)


def q(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def qs(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def js(script, *args):
    return driver.execute_script(script, *args)


def visible(css):
    try:
        els = qs(css)
        return bool(els) and els[0].is_displayed()
    except StaleElementReferenceException:
        return False


def login(user, password, code=None):
    driver.get(BASE + "/")
    wait(lambda: visible("#login-user-input"), what="the login page")
    q("#login-user-input").send_keys(user)
    q("#login-password-input").send_keys(password)
    q("#login-button").click()
    prompt = None
    # Either the second step (twofold's prompt) or the shell.
    wait(lambda: visible("#conversation-input") or "/system" in driver.current_url
         or qs("#login-error-message") and q("#login-error-message").text.strip()
         or qs("iframe"), what="the second step or the shell")
    if visible("#conversation-input"):
        prompt = q("#conversation-prompt").text
        if code is None:
            return {"prompt": prompt, "logged_in": False}
        q("#conversation-input").send_keys(code)
        q("#login-button").click()
    wait(lambda: qs("iframe") or (qs("#login-error-message") and q("#login-error-message").text.strip()),
         what="the shell after login")
    err = qs("#login-error-message")
    if not qs("iframe") and err:
        return {"prompt": prompt, "logged_in": False, "error": err[0].text}
    return {"prompt": prompt, "logged_in": True}


def gain_admin(password):
    """Cockpit's "Limited access" button: administrative access with the login password."""
    driver.switch_to.default_content()
    lock = "//button[.//span[contains(@class, 'ct-lock-wrapper')]]"
    wait(lambda: driver.find_elements(By.XPATH, lock), what="the access button")
    driver.find_element(By.XPATH, lock).click()
    wait(lambda: visible(".pf-c-modal-box input[type=password]"), what="the password prompt")
    q(".pf-c-modal-box input[type=password]").send_keys(password)
    driver.find_element(By.XPATH, "//div[contains(@class, 'pf-c-modal-box')]//button[normalize-space()='Authenticate']").click()
    wait(lambda: "Administrative access" in driver.find_element(By.XPATH, lock).text, timeout=60,
         what="administrative access")
    for close in driver.find_elements(By.XPATH, "//div[contains(@class, 'pf-c-modal-box')]//button[normalize-space()='Close']"):
        close.click()
    return {"access": driver.find_element(By.XPATH, lock).text}


def open_page():
    t = time.time()
    driver.switch_to.default_content()
    driver.get(BASE + "/twofold")
    wait(lambda: qs(FRAME), what="the twofold frame")
    driver.switch_to.frame(q(FRAME))
    wait(lambda: js("return document.body && document.body.dataset.ready"), what="the page")
    seconds = time.time() - t
    if js("return document.body.dataset.ready") == "admin":
        wait(lambda: js("return document.getElementById('tf-chart').dataset.ready"), what="the chart")
    return {"view": js("return document.body.dataset.ready"), "seconds": seconds,
            "chart_seconds": time.time() - t,
            "admin_visible": visible("#tf-admin"), "tabs_visible": visible("#tf-tabs"),
            "own_visible": visible("#tf-own"), "rows": rows()}


def rows():
    return js("""return Array.from(document.querySelectorAll('#tf-users tbody tr[data-user]')).map(tr => ({
        user: tr.dataset.user, status: tr.dataset.status,
        word: tr.querySelector('.tf-status-word').textContent,
        icon: tr.querySelector('.tf-status-icon').dataset.status,
        cells: Array.from(tr.cells).map(c => c.textContent)}))""")


def settled(query):
    """Waits until the table shows the answer to `query` ("prefix|statuses")."""
    wait(lambda: js("const r = document.getElementById('tf-admin'); return !r.dataset.loading && r.dataset.query") == query,
         what="the table for " + query)


def search(text, query):
    box = q("#tf-search")
    box.clear()
    if text:
        box.send_keys(text)
    else:
        js("arguments[0].dispatchEvent(new Event('input'))", box)
    settled(query)
    return {"rows": rows(), "alert": js("return document.getElementById('tf-users-alert').textContent")}


def dialog_text(dialog_id, timeout=30):
    wait(lambda: visible("#" + dialog_id), timeout=timeout, what="the dialog")
    return js("""const d = document.getElementById(arguments[0]);
        return {title: d.querySelector('.tf-modal-title').textContent,
                intro: (d.querySelector('#tf-dialog-intro') || {}).textContent || '',
                items: Array.from(d.querySelectorAll('li')).map(l => l.textContent),
                note: (d.querySelector('.tf-dialog-note') || {}).textContent || ''}""", dialog_id)


def finish_dialog(dialog_id, confirm):
    q("#tf-dialog-confirm" if confirm else "#tf-dialog-cancel").click()
    wait(lambda: not qs("#" + dialog_id), what="the dialog to close")
    wait(lambda: not js("return document.getElementById('tf-admin').dataset.busy"), what="the action")


def action(user, name, confirm=True):
    js("arguments[0].scrollIntoView({block: 'center'})", q("tr[data-user='%s'] .tf-kebab" % user))
    q("tr[data-user='%s'] .tf-kebab" % user).click()
    wait(lambda: visible("#tf-menu"), what="the menu")
    q("#tf-menu button[data-action='%s']" % name).click()
    text = dialog_text("tf-dialog")
    finish_dialog("tf-dialog", confirm)
    return {"dialog": text, "alert": js("return document.getElementById('tf-users-alert').textContent")}


def bulk(users, name):
    for u in users:
        box = q("tr[data-user='%s'] .tf-select" % u)
        if not box.is_selected():
            box.click()
    q(".tf-bulk[data-action='%s']" % name).click()
    text = dialog_text("tf-dialog")
    finish_dialog("tf-dialog", True)
    return {"dialog": text, "alert": js("return document.getElementById('tf-users-alert').textContent")}


def default_mode(mode, confirm):
    js("const s = document.getElementById('tf-default-mode'); s.value = arguments[0]; s.dispatchEvent(new Event('change'))", mode)
    q("#tf-default-apply").click()
    # The daemon counts every user first (PreviewDefaultMode): about a second at 100,000 users,
    # more on a busy machine.
    text = dialog_text("tf-default-dialog", timeout=60)
    finish_dialog("tf-default-dialog", confirm)
    return {"dialog": text}


def default_refused(mode):
    """The default's button when the daemon does not count: the alert, and whether a dialog came."""
    js("const s = document.getElementById('tf-default-mode'); s.value = arguments[0]; s.dispatchEvent(new Event('change'))", mode)
    q("#tf-default-apply").click()
    alert = "return document.getElementById('tf-default-alert').textContent"
    wait(lambda: js(alert) and not js("return document.getElementById('tf-admin').dataset.counting"),
         timeout=60, what="the refusal")
    return {"alert": js(alert), "dialog": bool(qs("#tf-default-dialog")),
            "now": js("return document.getElementById('tf-default-now').textContent")}


def chart():
    return js("""return Array.from(document.querySelectorAll('#tf-chart tbody tr')).map(tr => ({
        status: tr.dataset.status, count: tr.querySelector('.tf-chart-count').textContent,
        percent: tr.querySelector('.tf-chart-percent').textContent}))""")


def wait_row(user, status, timeout):
    t = time.time()
    wait(lambda: js("const r = document.querySelector(\"tr[data-user='\" + arguments[0] + \"']\"); return r && r.dataset.status", user) == status,
         timeout=timeout, what="%s to show %s" % (user, status))
    return {"seconds": time.time() - t}


def wait_chart(status, count, timeout):
    wait(lambda: js("const r = document.querySelector(\"#tf-chart tr[data-status='\" + arguments[0] + \"']\"); return r && r.dataset.count", status) == str(count),
         timeout=timeout, what="the chart to count %d %s" % (count, status))
    return {"chart": chart()}


def enroll():
    wait(lambda: visible("#tf-enroll"), what="the enroll button")
    q("#tf-enroll").click()
    wait(lambda: visible("#tf-enroll-panel") and q("#tf-key").text.strip() or visible("#tf-own-alert"),
         what="the key")
    if not visible("#tf-enroll-panel"):
        raise RuntimeError("no enrollment: " + q("#tf-own-alert").text)
    return {"key": q("#tf-key").text.replace(" ", ""), "label": q("#tf-enroll-label").text,
            "qr_modules": js("return document.querySelectorAll('#tf-qr svg path').length"),
            "qr_size": js("const s = document.querySelector('#tf-qr svg'); return s ? [s.getBoundingClientRect().width, s.getBoundingClientRect().height] : null")}


def confirm_enroll(code):
    q("#tf-code").send_keys(code)
    q("#tf-confirm").click()
    wait(lambda: visible("#tf-codes-panel") or (visible("#tf-own-alert") and "not accepted" in q("#tf-own-alert").text),
         what="the recovery codes")
    return {"codes": js("return Array.from(document.querySelectorAll('#tf-codes li')).map(l => l.textContent)"),
            "alert": q("#tf-own-alert").text if visible("#tf-own-alert") else "",
            "enrolling": js("return document.getElementById('tf-own').dataset.enrolling || ''")}


def proof(action, code):
    """New recovery codes (`regen`) or turning 2FA off (`disable`), proven with `code`."""
    if visible("#tf-codes-panel"):
        q("#tf-codes-done").click()
    js("document.getElementById('tf-own-alert').hidden = true")
    q("#tf-regen" if action == "regen" else "#tf-disable").click()
    wait(lambda: visible("#tf-proof-panel"), what="the code prompt")
    q("#tf-proof").send_keys(code)
    q("#tf-proof-ok").click()
    if action == "regen":
        wait(lambda: visible("#tf-codes-panel") or visible("#tf-own-alert"), what="the new codes")
    else:
        wait(lambda: visible("#tf-own-alert"), what="the answer")
    wait(lambda: js("return document.getElementById('tf-own').dataset.status"), what="the status")
    time.sleep(0.3)  # the status read again after the change
    return {"codes": js("return Array.from(document.querySelectorAll('#tf-codes li')).map(l => l.textContent)")
            if visible("#tf-codes-panel") else [],
            "alert": q("#tf-own-alert").text if visible("#tf-own-alert") else "",
            "proof_left": q("#tf-proof").get_attribute("value"),
            "status": js("return document.getElementById('tf-own').dataset.status")}


def auths():
    return js("return Array.from(document.querySelectorAll('#tf-auths tbody tr')).map(r => [r.dataset.id, r.querySelector('.tf-auth-name').textContent, r.querySelector('.tf-auth-name').children.length])")


def ask(button, name, code):
    """Clicks `button`, fills the prompt's name (when given) and code (when given), continues."""
    if visible("#tf-codes-panel"):
        q("#tf-codes-done").click()
    js("document.getElementById('tf-own-alert').hidden = true")
    button.click()
    wait(lambda: visible("#tf-proof-panel"), what="the prompt")
    if name is not None:
        q("#tf-proof-name").clear()
        q("#tf-proof-name").send_keys(name)
    if code is not None:
        q("#tf-proof").send_keys(code)
    q("#tf-proof-ok").click()


def add_auth(name, code):
    wait(lambda: visible("#tf-add"), what="the add button")
    ask(q("#tf-add"), name, code)
    wait(lambda: (visible("#tf-enroll-panel") and q("#tf-key").text.strip()) or visible("#tf-own-alert"),
         what="the new key")
    if not visible("#tf-enroll-panel"):
        return {"alert": q("#tf-own-alert").text}
    return {"key": q("#tf-key").text.replace(" ", ""),
            "adding": js("return document.getElementById('tf-own').dataset.adding || ''")}


def confirm_add(code):
    q("#tf-code").send_keys(code)
    q("#tf-confirm").click()
    wait(lambda: visible("#tf-own-alert"), what="the answer")
    wait(lambda: len(auths()) > 0, what="the authenticators")
    time.sleep(0.5)  # the list read again after the change
    return {"alert": q("#tf-own-alert").text, "auths": auths(),
            "codes_shown": visible("#tf-codes-panel"),
            "enrolling": js("return document.getElementById('tf-own').dataset.enrolling || ''")}


def auth_op(op, id_, name, code):
    row = "#tf-auths tbody tr[data-id='%s'] " % id_
    ask(q(row + (".tf-auth-rename" if op == "rename" else ".tf-auth-remove")), name, code)
    time.sleep(1)  # the answer, then the list read again
    return {"alert": q("#tf-own-alert").text if visible("#tf-own-alert") else "", "auths": auths()}


def own_status():
    wait(lambda: js("return document.getElementById('tf-own').dataset.status"), what="the own status")
    return {"status": js("return document.getElementById('tf-own').dataset.status"),
            "text": q("#tf-own").text}


def dbus(method, signature, args, superuser):
    return driver.execute_async_script("""
        const [method, signature, args, superuser, done] = arguments;
        const options = superuser ? {bus: 'system', superuser: 'try'} : {bus: 'system'};
        const client = cockpit.dbus('org.twofold.Enroll1', options);
        client.call('/org/twofold/Enroll1', 'org.twofold.Enroll1.Manager', method, args, {type: signature})
            .then(reply => done({ok: JSON.stringify(reply)}),
                  error => done({error: error.name || String(error), message: error.message || ''}))
            .finally(() => client.close());""", method, signature, args, superuser)


def page_contains(text):
    """Whether `text` is anywhere in the frame's or the shell's DOM (markup and values), URL
    or web storage."""
    where = """const t = arguments[0];
        const storage = s => Array.from({length: s.length}, (_, i) => s.key(i) + '=' + s.getItem(s.key(i))).join('\\n');
        return document.documentElement.outerHTML.includes(t) || location.href.includes(t) ||
            Array.from(document.querySelectorAll('input')).some(i => i.value.includes(t)) ||
            storage(localStorage).includes(t) || storage(sessionStorage).includes(t)"""
    # Also as the page groups a key for reading ("ABCD EFGH ...").
    variants = [text, " ".join(text[i:i + 4] for i in range(0, len(text), 4))]
    inner = any(js(where, v) for v in variants)
    driver.switch_to.default_content()
    outer = any(js(where, v) for v in variants)
    driver.switch_to.frame(q(FRAME))
    return {"frame": inner, "shell": outer}


def screenshot(path, frame_only):
    if frame_only:
        q("body").screenshot(path)
    else:
        driver.switch_to.default_content()
        driver.save_screenshot(path)
        driver.switch_to.frame(q(FRAME))
    return {"path": path}


def handle(cmd):
    global driver
    op = cmd["op"]
    if op == "start":
        if driver:
            driver.quit()
        driver = new_driver()
        return {}
    if op == "login":
        return login(cmd["user"], cmd["password"], cmd.get("code"))
    if op == "gain_admin":
        return gain_admin(cmd["password"])
    if op == "open":
        return open_page()
    if op == "rows":
        return {"rows": rows()}
    if op == "search":
        return search(cmd["text"], cmd["query"])
    if op == "filter":
        q(".tf-chip[data-status='%s']" % cmd["status"]).click()
        settled(cmd["query"])
        return {"rows": rows()}
    if op == "more":
        n = len(rows())
        q("#tf-more").click()
        wait(lambda: len(rows()) > n and not js("return document.getElementById('tf-admin').dataset.loading"), what="more rows")
        return {"rows": rows()}
    if op == "sort":
        q("#tf-users th[data-sort='%s'] button" % cmd["key"]).click()
        return {"rows": rows(), "note": q("#tf-count").text}
    if op == "action":
        return action(cmd["user"], cmd["action"], cmd.get("confirm", True))
    if op == "bulk":
        return bulk(cmd["users"], cmd["action"])
    if op == "default":
        return default_mode(cmd["mode"], cmd.get("confirm", True))
    if op == "default_refused":
        return default_refused(cmd["mode"])
    if op == "chart":
        return {"chart": chart()}
    if op == "wait_row":
        return wait_row(cmd["user"], cmd["status"], cmd.get("timeout", 15))
    if op == "wait_chart":
        return wait_chart(cmd["status"], cmd["count"], cmd.get("timeout", 15))
    if op == "enroll":
        return enroll()
    if op == "confirm_enroll":
        return confirm_enroll(cmd["code"])
    if op == "proof":
        return proof(cmd["action"], cmd["code"])
    if op == "own":
        return own_status()
    if op == "add_auth":
        return add_auth(cmd["name"], cmd["code"])
    if op == "confirm_add":
        return confirm_add(cmd["code"])
    if op == "auths":
        return {"auths": auths()}
    if op == "rename_auth":
        return auth_op("rename", cmd["id"], cmd["name"], None)
    if op == "remove_auth":
        return auth_op("remove", cmd["id"], None, cmd["code"])
    if op == "dbus":
        return dbus(cmd["method"], cmd["signature"], cmd["args"], cmd.get("superuser", False))
    if op == "contains":
        return page_contains(cmd["text"])
    if op == "js":
        return {"value": js(cmd["script"])}
    if op == "screenshot":
        return screenshot(cmd["path"], cmd.get("frame_only", False))
    if op == "console_log":
        return {"entries": driver.get_log("browser")}
    if op == "tab":
        q("#tf-tab-" + cmd["tab"]).click()
        return {}
    raise RuntimeError("unknown op " + op)


def main():
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            try:
                out = {"ok": handle(cmd)}
            except Exception as e:  # reported to the test, which fails with it
                out = {"error": "%s: %s" % (type(e).__name__, e), "trace": traceback.format_exc(),
                       "url": driver.current_url if driver else None}
            print(json.dumps(out), flush=True)
    finally:
        if driver:
            driver.quit()


if __name__ == "__main__":
    main()
