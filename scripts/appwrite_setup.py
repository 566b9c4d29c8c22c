#!/usr/bin/env python3
"""Applies docs/backends/appwrite.md to an Appwrite (or the test stand-in): every
```appwrite-request block, verbatim and in order.

Usage: appwrite_setup.py GUIDE BASE_URL   (BASE_URL: http://HOST:PORT, the blocks carry /v1)
Reads RCS_TEST_APPWRITE_PROJECT and RCS_TEST_APPWRITE_KEY.
"""
import json
import os
import re
import sys
import urllib.error
import urllib.request


def blocks(text):
    return re.findall(r"```appwrite-request\n(.*?)```", text, re.S)


def main():
    guide, base = sys.argv[1], sys.argv[2].rstrip("/")
    project = os.environ["RCS_TEST_APPWRITE_PROJECT"]
    key = os.environ["RCS_TEST_APPWRITE_KEY"]
    found = blocks(open(guide, encoding="utf-8").read())
    if not found:
        sys.exit(f"appwrite_setup: no appwrite-request blocks in {guide}")
    for block in found:
        first, _, body = block.partition("\n")
        method, path = first.split(None, 1)
        data = json.dumps(json.loads(body)).encode() if body.strip() else None
        req = urllib.request.Request(base + path.strip(), data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("X-Appwrite-Project", project)
        req.add_header("X-Appwrite-Key", key)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            sys.exit(f"appwrite_setup: {method} {path.strip()} failed: {e.code} {e.read().decode()}")
    print(f"appwrite_setup: applied {len(found)} requests from {guide}", file=sys.stderr)


if __name__ == "__main__":
    main()
