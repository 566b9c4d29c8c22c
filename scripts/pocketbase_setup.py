#!/usr/bin/env python3
"""Applies docs/backends/pocketbase.md to a PocketBase server, so the guide is what gets tested.

The guide's fenced blocks whose info string starts with `rcs-setup:` are the set-up:
  ```json rcs-setup:settings```        body of PATCH /api/settings
  ```json rcs-setup:collection```      body of POST /api/collections (PATCH when it exists)
  ```js rcs-setup:hook FILE```         a file for the server's pb_hooks directory

Usage:
  pocketbase_setup.py hooks GUIDE HOOKS_DIR
  pocketbase_setup.py apply GUIDE URL          (superuser from RCS_TEST_POCKETBASE_EMAIL/_PASSWORD)

Standard library only. Never prints the password.
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request

BLOCK = re.compile(r"^```(\w+) rcs-setup:(\w+)(?: (\S+))?\n(.*?)^```", re.S | re.M)


def blocks(guide):
    with open(guide, encoding="utf-8") as f:
        text = f.read()
    found = [(m.group(2), m.group(3), m.group(4)) for m in BLOCK.finditer(text)]
    if not found:
        sys.exit(f"pocketbase_setup: no rcs-setup blocks in {guide}")
    return found


def call(url, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def apply(guide, url):
    email = os.environ["RCS_TEST_POCKETBASE_EMAIL"]
    password = os.environ["RCS_TEST_POCKETBASE_PASSWORD"]
    status, body = call(url, "POST", "/api/collections/_superusers/auth-with-password",
                        {"identity": email, "password": password})
    if status != 200:
        sys.exit(f"pocketbase_setup: superuser login failed ({status})")
    token = body["token"]
    for kind, arg, text in blocks(guide):
        if kind == "hook":
            continue
        payload = json.loads(text)
        if kind == "settings":
            status, body = call(url, "PATCH", "/api/settings", payload, token)
            what = "settings"
        elif kind == "collection":
            name = payload["name"]
            status, _ = call(url, "GET", f"/api/collections/{name}", None, token)
            if status == 200:
                status, body = call(url, "PATCH", f"/api/collections/{name}", payload, token)
            else:
                status, body = call(url, "POST", "/api/collections", payload, token)
            what = f"collection {name}"
        else:
            sys.exit(f"pocketbase_setup: unknown block kind {kind!r}")
        if status != 200:
            sys.exit(f"pocketbase_setup: applying {what} failed ({status}): {json.dumps(body)}")
        print(f"pocketbase_setup: applied {what}", file=sys.stderr)


def hooks(guide, directory):
    os.makedirs(directory, exist_ok=True)
    for kind, arg, text in blocks(guide):
        if kind == "hook":
            if not arg or "/" in arg:
                sys.exit("pocketbase_setup: a hook block needs a plain file name")
            with open(os.path.join(directory, arg), "w", encoding="utf-8") as f:
                f.write(text)


def main(argv):
    if len(argv) == 4 and argv[1] == "hooks":
        hooks(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "apply":
        apply(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
