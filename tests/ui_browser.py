#!/usr/bin/python3
"""The page for people (src/ui/) in a real browser: Debian's chromium driven through
chromedriver by Debian's python3-selenium, against a running pykv.

tests/ui.rs starts the server (free port, temporary data directory) and runs this script;
by hand: /usr/bin/python3 tests/ui_browser.py --url http://127.0.0.1:PORT --admin TOKEN --shots DIR

Every wait has a timeout and the whole run has an alarm; the browser and chromedriver this
script starts are stopped by selenium (by their own process), never by name. Exit 0: all passed.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

# The whole run, however slow the machine: tests/ui.rs kills us a little later still.
RUN_SECONDS = 100
# One wait for the page to show something.
WAIT_SECONDS = 10
# What Chromium needs here: root (no sandbox), no GPU, and none of its own network traffic
# (this machine refuses connections that are not to 127.0.0.1).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
]
XSS_KEY = "<img src=x onerror=alert(1)>"
XSS_VALUE = "<script>alert(2)</script><img src=x onerror=alert(3)>"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Api:
    """Plain HTTP beside the browser: to change things behind its back, and to check its work."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=WAIT_SECONDS) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def json(self, method, path, token, value=None):
        body = None if value is None else json.dumps(value).encode()
        status, _, data = self.call(method, path, token, body)
        return status, (json.loads(data) if data else None)


class Page:
    """The browser, with waits that fail with a message instead of hanging."""

    def __init__(self, driver, base, shots):
        self.d = driver
        self.base = base
        self.shots = shots

    def go(self, route):
        self.d.get(self.base + "/" + route)

    def until(self, fn, what, seconds=WAIT_SECONDS):
        try:
            # Views redraw themselves on live changes: an element may go stale between polls.
            wait = WebDriverWait(self.d, seconds, poll_frequency=0.1,
                                 ignored_exceptions=[StaleElementReferenceException])
            return wait.until(lambda d: fn())
        except TimeoutException:
            raise Failure("timed out after %ss waiting for %s (at %s)" % (seconds, what, self.d.current_url))

    def find(self, css):
        return self.until(lambda: self._visible(css), css)

    def _visible(self, css):
        for e in self.d.find_elements(By.CSS_SELECTOR, css):
            if e.is_displayed():
                return e
        return None

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css):
        return [e.text for e in self.all(css)]

    def button(self, text, within="main"):
        xpath = "//%s//button[normalize-space()=%s]" % (within, json.dumps(text, ensure_ascii=False))
        return self.until(lambda: next((b for b in self.d.find_elements(By.XPATH, xpath)
                                        if b.is_displayed() and b.is_enabled()), None),
                          "button " + text)

    def click(self, text, within="main"):
        self.button(text, within).click()

    def curl_of(self, text):
        """The command the curl button beside button `text` shows, and the dialog closed."""
        b = self.button(text)
        b.find_element(By.XPATH, "following-sibling::button[@class='curl']").click()
        cmd = self.find("dialog pre.curl-command").text
        self.click("Close", "dialog")
        self.until(lambda: not self.all("dialog"), "the curl dialog to close")
        return cmd

    def type(self, css, text, clear=True):
        e = self.find(css)
        if clear:
            e.clear()
        e.send_keys(text)
        return e

    def hash(self):
        return self.d.execute_script("return location.hash")

    def wait_hash(self, want):
        self.until(lambda: self.hash() == want, "location.hash == " + want)

    def text_in(self, css, want):
        self.until(lambda: any(want in t for t in self.texts(css)), "%r in %s" % (want, css))

    def notice(self):
        return self.find("#notice span").text

    def shot(self, name):
        """Save a screenshot, and check the view shows no JavaScript value by mistake."""
        self.d.save_screenshot(os.path.join(self.shots, name + ".png"))
        text = self.d.find_element(By.TAG_NAME, "main").text
        for slip in ("[object ", "undefined", "NaN"):
            check(slip not in text, "%r shown in %s" % (slip, name))
        check("null" not in text.splitlines(), "a lone null shown in " + name)


def scenario(p, api, admin):
    d = p.d
    url = p.base

    step("sign-in: a wrong token shows the server's message; the admin token signs in")
    p.go("")
    p.wait_hash("#/signin")
    p.find("input[name=token]")
    p.shot("01-signin")
    _, wrong = api.json("GET", "/v1/projects", "not-a-token-0000000000")
    p.type("input[name=token]", "not-a-token-0000000000")
    p.click("Sign in")
    p.until(lambda: p.notice() == wrong["message"], "the 401 message")
    p.type("input[name=token]", admin)
    p.click("Sign in")
    p.wait_hash("#/projects")
    p.text_in("main h1", "Projects")
    stored = d.execute_script("return [sessionStorage.getItem('pykv.session'), localStorage.length, document.cookie]")
    check(json.loads(stored[0]) == {"token": admin, "admin": True}, "session: %r" % stored[0])
    check(stored[1] == 0 and stored[2] == "", "nothing but sessionStorage holds the token")

    step("projects: create one; its tokens are shown once with a warning; copy as curl")
    p.type("input[name=name]", "garden")
    cmd = p.curl_of("Create project")
    want = ("curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            "--data-binary '{\"name\":\"garden\"}' %s/v1/projects" % url)
    check(cmd == want, "curl: %r" % cmd)
    p.click("Create project")
    p.find(".secrets")
    check("never shows them again" in p.find(".secrets .warn").text, "the warning")
    secrets = {row.find_elements(By.TAG_NAME, "td")[0].text: row.find_element(By.CSS_SELECTOR, ".secret").text
               for row in p.all(".secrets tbody tr")}
    check(set(secrets) == {"write", "read"}, "two tokens: %r" % secrets)
    write, read = secrets["write"], secrets["read"]
    check(api.call("GET", "/v1/kv/garden", write)[0] == 200, "the write secret works")
    p.text_in("main table td", "garden")
    p.shot("02-projects")

    step("keys: put a text value (and run its curl command for real)")
    p.go("#/p/garden/keys")
    p.text_in("main", "No keys yet.")
    p.find("a.button[href^='#/p/garden/new']").click()
    p.type("input[name=key]", "notes/hello")
    p.type("textarea[name=value]", "hello world")
    cmd = p.curl_of("Create")
    want = ("curl -s -X PUT -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: text/plain; charset=utf-8' "
            "-H 'If-None-Match: *' --data-binary 'hello world' %s/v1/kv/garden/notes/hello" % url)
    check(cmd == want, "curl: %r" % cmd)
    p.click("Create")
    p.wait_hash("#/p/garden/key/notes%2Fhello")
    p.text_in("pre.value", "hello world")
    status, headers, body = api.call("GET", "/v1/kv/garden/notes/hello", read)
    check((status, headers.get("Content-Type"), body) == (200, "text/plain; charset=utf-8", b"hello world"),
          "stored: %r" % ((status, headers, body),))
    # The command as shown, run by bash (only its condition changed: the key exists now).
    run = subprocess.run(["bash", "-c", cmd.replace("'hello world'", "'hello curl'").replace(
        "If-None-Match: *", "If-Match: \"1\"")], env={"TOKEN": write, "PATH": os.environ["PATH"]},
        capture_output=True, timeout=WAIT_SECONDS)
    check(json.loads(run.stdout) == {"project": "garden", "key": "notes/hello", "version": 2},
          "the curl command works: %r" % run.stdout)
    p.until(lambda: "hello curl" in p.find("pre.value").text, "the live key view to show the curl write")

    step("keys: a key with a space, ?, #, %, + and a non-ASCII letter is one key in every URL")
    odd = "notes/a b?c#d%\u00e9+"
    p.go("#/p/garden/new?prefix=notes%2F")
    p.type("input[name=key]", odd[len("notes/"):], clear=False)
    p.type("textarea[name=value]", "odd")
    p.click("Create")
    p.wait_hash("#/p/garden/key/" + urllib.parse.quote(odd, safe="-_.!~*'()"))
    p.text_in("main .crumbs strong", odd[len("notes/"):])
    check(api.call("GET", "/v1/kv/garden/" + urllib.parse.quote(odd, safe=""), read)[2] == b"odd", "the odd key")

    step("keys: put a JSON value; it shows pretty-printed")
    p.go("#/p/garden/new?prefix=config%2F")
    p.until(lambda: p.find("input[name=key]").get_attribute("value") == "config/", "the prefix in the key")
    p.type("input[name=key]", "app.json", clear=False)
    Select(p.find("select[name=kind]")).select_by_value("json")
    check(p.find("input[name=type]").get_attribute("value") == "application/json", "JSON's type")
    p.type("textarea[name=value]", '{"interval":5,"names":["a","b"]}')
    p.click("Format JSON")
    check(p.find("textarea[name=value]").get_attribute("value") ==
          json.dumps({"interval": 5, "names": ["a", "b"]}, indent=2), "formatted")
    p.type("textarea[name=value]", '{"interval":5,"names":["a","b"]}')
    p.click("Create")
    p.wait_hash("#/p/garden/key/config%2Fapp.json")
    p.until(lambda: p.find("pre.value").text == json.dumps({"interval": 5, "names": ["a", "b"]}, indent=2),
            "pretty JSON")
    check("on" in p.button("JSON").get_attribute("class"), "the JSON tab is chosen")
    p.shot("03-value-json")
    p.click("Text")
    check(p.find("pre.value").text == '{"interval":5,"names":["a","b"]}', "the text as stored")

    step("keys: put a binary value from a file; it shows as hex and downloads")
    blob = bytes([0, 1, 2, 0xFF]) + b"pykv" + bytes(range(0x80, 0x90))
    path = os.path.join(tempfile.mkdtemp(prefix="pykv-ui-"), "blob.bin")
    with open(path, "wb") as f:
        f.write(blob)
    p.go("#/p/garden/new")
    p.type("input[name=key]", "bin/blob")
    Select(p.find("select[name=kind]")).select_by_value("file")
    p.find("input[name=file]").send_keys(path)
    cmd = p.curl_of("Create")
    check("--data-binary @blob.bin" in cmd and "'Content-Type: application/octet-stream'" in cmd, "curl: " + cmd)
    p.click("Create")
    p.wait_hash("#/p/garden/key/bin%2Fblob")
    hexed = p.find("pre.value.hex").text
    check(hexed.startswith("00000000  00 01 02 ff 70 79 6b 76 80 81"), "hex: %r" % hexed)
    check(p.texts(".tabs button[disabled]") == ["Text", "JSON"], "only hex for bytes that are not text")
    check(api.call("GET", "/v1/kv/garden/bin/blob", read)[2] == blob, "the exact bytes")
    check(p.curl_of("Download").endswith("-o blob %s/v1/kv/garden/bin/blob" % url), "download curl")
    p.shot("04-value-hex")

    step("browse: folders, a prefix filter, and pages of 50 fetched with after")
    ops = [{"op": "put", "key": "many/k%03d" % i, "value": str(i)} for i in range(120)]
    ops += [{"op": "put", "key": "big/k%03d" % i, "value": "x"} for i in range(300)]
    check(api.json("POST", "/v1/kv/garden", write, {"ops": ops})[0] == 200, "batch")
    before = list_requests(api, admin)
    p.go("#/p/garden/keys")
    p.until(lambda: p.texts("ul.entries a") == ["big/", "bin/", "config/", "many/", "notes/"], "the folders")
    check(list_requests(api, admin) - before <= 4, "420 keys in folders cost a few listings")
    p.shot("05-keys")
    p.type("input[name=prefix]", "con")
    p.click("List")
    p.until(lambda: p.texts("ul.entries a") == ["config/"], "config/ under the prefix con")
    p.find("ul.entries a.folder").click()
    p.wait_hash("#/p/garden/keys?prefix=config%2F")
    p.until(lambda: p.texts("ul.entries a") == ["app.json"], "the key in its folder")
    p.go("#/p/garden/keys?prefix=many%2F")
    p.until(lambda: len(p.all("ul.entries a")) == 50, "a page of 50")
    check(p.texts("ul.entries a")[0] == "k000", "page 1")
    p.find("a.button[href*='after=many%2Fk049']").click()
    p.until(lambda: p.texts("ul.entries a")[:1] == ["k050"] and len(p.all("ul.entries a")) == 50, "page 2")
    p.find("a.button[href*='after=many%2Fk099']").click()
    p.until(lambda: p.texts("ul.entries a")[:1] == ["k100"] and len(p.all("ul.entries a")) == 20, "page 3")
    check(not p.all("a.button[href*='after=many%2Fk119']"), "no page after the last")

    step("edit with a conflict: both versions shown; overwrite; then reload keeps the server's")
    p.go("#/p/garden/edit/notes%2Fhello")
    p.type("textarea[name=value]", "hello from the browser")
    api.call("PUT", "/v1/kv/garden/notes/hello", write, b"hello from elsewhere", {"Content-Type": "text/plain"})
    p.text_in("main .box.warn", "Changed on the server since you opened it")
    p.click("Save")
    p.find(".conflict")
    check("you edited version 2, it is now version" in p.find(".conflict").text, p.find(".conflict").text)
    check(p.texts(".conflict pre.value") == ["hello from the browser", "hello from elsewhere"], "both versions")
    p.shot("06-conflict")
    p.click("Overwrite with yours")
    p.wait_hash("#/p/garden/key/notes%2Fhello")
    p.text_in("pre.value", "hello from the browser")
    check(api.call("GET", "/v1/kv/garden/notes/hello", read)[2] == b"hello from the browser", "overwritten")
    p.go("#/p/garden/edit/notes%2Fhello")
    p.type("textarea[name=value]", "mine again")
    api.call("PUT", "/v1/kv/garden/notes/hello", write, b"server wins", {"Content-Type": "text/plain"})
    p.click("Save")
    p.find(".conflict")
    p.find(".conflict a.button").click()
    p.wait_hash("#/p/garden/key/notes%2Fhello")
    p.until(lambda: p.find("pre.value").text == "server wins", "the server's value")

    step("expiry: set and shown, then removed")
    p.type("input[name=ttl]", "3600")
    p.click("Set expiry")
    p.until(lambda: "(in 1 h 0 min)" in p.find("dd.expires").text, "the expiry shown")
    _, headers, _ = api.call("GET", "/v1/kv/garden/notes/hello", read)
    check(abs(int(headers["X-Expires-At"]) - (time.time() + 3600)) < 60, "X-Expires-At: %r" % headers)
    p.click("Never expire")
    p.until(lambda: p.find("dd.expires").text == "never", "no expiry")
    check("X-Expires-At" not in api.call("GET", "/v1/kv/garden/notes/hello", read)[1], "expiry removed")

    step("counters: create at 5, +1, add -10")
    p.go("#/p/garden/new")
    p.type("input[name=key]", "visits")
    Select(p.find("select[name=kind]")).select_by_value("counter")
    p.type("input[name=start]", "5")
    p.click("Create")
    p.wait_hash("#/p/garden/key/visits")
    p.until(lambda: p.find("pre.value").text == "5", "5")
    p.click("+1")
    p.until(lambda: p.find("pre.value").text == "6", "6")
    p.type("input[name=incr]", "-10")
    p.click("Add")
    p.until(lambda: p.find("pre.value").text == "-4", "-4")
    check(api.call("GET", "/v1/kv/garden/visits", read)[2] == b"-4", "the counter")

    step("delete a key after a confirmation")
    p.go("#/p/garden/key/config%2Fapp.json")
    p.find("pre.value")
    p.click("Delete")
    p.click("Delete", "dialog")
    p.wait_hash("#/p/garden/keys?prefix=config%2F")
    p.text_in("main", "No keys start with config/.")
    check(api.call("GET", "/v1/kv/garden/config/app.json", read)[0] == 404, "deleted")

    step("live: a key put and deleted by someone else shows up and goes")
    p.go("#/p/garden/keys?prefix=live%2F")
    p.text_in("main", "No keys start with live/.")
    # No race with the watch request: it asks for changes after the listing's version.
    p.find(".live.on")
    api.call("PUT", "/v1/kv/garden/live/sensor", write, b"21.5", {"Content-Type": "text/plain"})
    p.until(lambda: p.texts("ul.entries a") == ["sensor"], "the new key, live")
    p.shot("07-live")
    api.call("DELETE", "/v1/kv/garden/live/sensor", write)
    p.text_in("main", "No keys start with live/.")

    step("a key named like markup shows as text, and so does its value")
    quoted = urllib.parse.quote(XSS_KEY, safe="")
    api.call("PUT", "/v1/kv/garden/" + quoted, write, XSS_VALUE.encode(), {"Content-Type": "text/html"})
    p.go("#/p/garden/keys")
    p.until(lambda: XSS_KEY in p.texts("ul.entries a"), "the key as text")
    check(not p.all("main img") and not p.all("img[src=x]"), "no img element")
    [a for a in p.all("ul.entries a") if a.text == XSS_KEY][0].click()
    p.until(lambda: p.find("pre.value").text == XSS_VALUE, "the value as text")
    check(not p.all("img[src=x]") and not p.all("main script"), "no markup from data")
    p.shot("08-xss")
    try:
        d.switch_to.alert
        raise Failure("an alert ran")
    except NoAlertPresentException:
        pass

    step("tokens: create one with a prefix, then revoke it")
    p.go("#/p/garden/tokens")
    p.until(lambda: sorted(p.texts(".token-list tbody td:first-child")) == ["read", "write"], "the tokens")
    p.type("input[name=label]", "probe")
    Select(p.find("select[name=access]")).select_by_value("read")
    p.type("input[name=prefix]", "notes/")
    p.click("Create token")
    probe = p.find(".secrets .secret").text
    check(api.call("GET", "/v1/kv/garden/notes/hello", probe)[0] == 200, "the new token reads")
    check(api.call("GET", "/v1/kv/garden/visits", probe)[0] == 403, "only under its prefix")
    p.shot("09-tokens")
    row = p.until(lambda: next((r for r in p.all(".token-list tbody tr")
                                if r.find_elements(By.TAG_NAME, "td")[0].text == "probe"), None), "probe's row")
    row.find_element(By.XPATH, ".//button[normalize-space()='Revoke']").click()
    p.text_in("dialog", "Revoke the read token \"probe\"")
    p.click("Revoke", "dialog")
    p.until(lambda: sorted(p.texts(".token-list tbody td:first-child")) == ["read", "write"], "probe gone")
    check(not p.all(".secrets"), "its secret no longer shown")
    check(api.call("GET", "/v1/kv/garden/notes/hello", probe)[0] == 401, "revoked")

    step("settings: persistence and quotas; deleting a project needs its name typed")
    p.go("#/p/garden/settings")
    Select(p.find("select[name=persistence]")).select_by_value("interval")
    p.type("input[name=max_keys]", "1000")
    p.click("Save settings")
    p.until(lambda: api.json("GET", "/v1/projects/garden", admin)[1]["persistence"] == "interval", "saved")
    check(api.json("GET", "/v1/projects/garden", admin)[1]["max_keys"] == 1000, "quota")
    p.find("input[name=max_keys]")
    p.shot("10-settings")
    check(api.json("POST", "/v1/projects", admin, {"name": "scratch"})[0] == 201, "scratch")
    p.go("#/p/scratch/settings")
    p.click("Delete project…")
    confirm = p.find("dialog button.danger")
    check(not confirm.is_enabled(), "disabled until the name is typed")
    p.type("dialog input", "scratch")
    p.click("Delete scratch", "dialog")
    p.wait_hash("#/projects")
    check(api.call("GET", "/v1/projects/scratch", admin)[0] == 404, "deleted")

    step("/docs: every operation from /openapi.json; one sent from its form")
    p.go("docs")
    p.wait_hash("#/docs")
    check(d.execute_script("return location.pathname") == "/", "/docs shows #/docs")
    summaries = p.all("details.op[id^=op-]")
    check(len(summaries) == count_operations(api), "every operation listed")
    p.find("#op-getProjects summary").click()
    p.wait_hash("#/docs/getProjects")
    op = p.find("#op-getProjects")
    op.find_element(By.XPATH, ".//button[normalize-space()='Send']").click()
    p.until(lambda: op.find_element(By.CSS_SELECTOR, ".answer .status").text == "200 OK", "200 OK")
    check('"name": "garden"' in op.find_element(By.CSS_SELECTOR, ".answer pre.body").text, "the body")
    check("content-type: application/json" in op.find_element(By.CSS_SELECTOR, ".answer pre.headers").text,
          "the headers")
    d.execute_script("arguments[0].scrollIntoView()", op.find_element(By.CSS_SELECTOR, ".try"))
    p.shot("11-docs")
    p.go("#/docs/getKey")
    op = p.find("#op-getKey")
    check(op.get_attribute("open") is not None, "a deep link opens its operation")
    op.find_element(By.CSS_SELECTOR, "input[name=project]").send_keys("garden")
    op.find_element(By.CSS_SELECTOR, "input[name=key]").send_keys("notes/hello")
    op.find_element(By.XPATH, ".//button[normalize-space()='Send']").click()
    p.until(lambda: op.find_element(By.CSS_SELECTOR, ".answer pre.body").text == "server wins", "the value")

    step("a project token signs in to its project; a 401 brings the sign-in back with its message")
    p.find("#who button").click()
    p.wait_hash("#/signin")
    p.type("input[name=token]", write)
    p.click("Sign in")
    p.until(lambda: "project token" in p.notice(), "asks for the project")
    p.type("input[name=project]", "garden")
    p.click("Sign in")
    p.wait_hash("#/p/garden/keys")
    p.find("ul.entries")
    check(not p.all("nav a[href='#/projects']"), "no admin pages for a project token")
    _, tokens = api.json("GET", "/v1/projects/garden/tokens", admin)
    wid = [t["id"] for t in tokens["tokens"] if t["label"] == "write"][0]
    check(api.call("DELETE", "/v1/projects/garden/tokens/" + wid, admin)[0] == 204, "revoked behind its back")
    p.go("#/p/garden/keys?prefix=notes%2F")
    p.wait_hash("#/signin?next=p%2Fgarden%2Fkeys%3Fprefix%3Dnotes%252F")
    check(p.find("form .box.error").text == "unknown or revoked token", "the server's message")
    check(d.execute_script("return sessionStorage.getItem('pykv.session')") is None, "signed out")

    step("on a phone-sized screen")
    d.set_window_size(390, 844)
    p.type("input[name=token]", admin)
    p.click("Sign in")
    p.wait_hash("#/p/garden/keys?prefix=notes%2F")
    p.find("ul.entries")
    check(d.execute_script("return document.documentElement.scrollWidth <= innerWidth + 1"), "no sideways scroll")
    p.shot("12-phone-keys")
    p.go("#/p/garden/key/notes%2Fhello")
    p.find("pre.value")
    check(d.execute_script("return document.documentElement.scrollWidth <= innerWidth + 1"), "no sideways scroll")
    p.shot("13-phone-value")

    step("no script error and no Content-Security-Policy violation in the console")
    bad = [e["message"] for e in d.get_log("browser")
           if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    check(not bad, "console: %r" % bad)


def list_requests(api, admin):
    _, _, text = api.call("GET", "/metrics", admin)
    for line in text.decode().splitlines():
        if line.startswith('pykv_requests_total{route="kv_list",status="200"}'):
            return float(line.split()[-1])
    return 0.0


def count_operations(api):
    _, _, body = api.call("GET", "/openapi.json")
    doc = json.loads(body)
    methods = {"get", "head", "put", "post", "patch", "delete", "options"}
    return sum(1 for item in doc["paths"].values() for m in item if m in methods)


def step(text):
    print("ui: " + text, flush=True)


def on_alarm(signum, frame):
    raise Failure("the browser test ran past %s seconds" % RUN_SECONDS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = ap.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(RUN_SECONDS)
    profile = tempfile.mkdtemp(prefix="pykv-ui-chromium-")
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS + ["--user-data-dir=" + profile]:
        options.add_argument(flag)
    options.binary_location = args.chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    page = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=options)
        driver.set_page_load_timeout(WAIT_SECONDS)
        driver.set_script_timeout(WAIT_SECONDS)
        page = Page(driver, args.url.rstrip("/"), args.shots)
        scenario(page, Api(page.base), args.admin)
        print("ui: all passed; screenshots in " + args.shots, flush=True)
        return 0
    except Exception as e:
        print("ui: FAILED: %s" % e, flush=True)
        traceback.print_exc()
        if page:
            try:
                page.shot("failure")
                print("ui: page at failure: %s\n%s" % (driver.current_url, driver.find_element(By.TAG_NAME, "body").text[:3000]))
                for entry in driver.get_log("browser"):
                    print("ui: console: " + entry["message"])
            except Exception:
                pass
        return 1
    finally:
        signal.alarm(0)
        if driver:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
