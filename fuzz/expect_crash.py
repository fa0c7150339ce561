#!/usr/bin/env python3
"""Runs a fuzz target that must crash: passes when it exits non-zero and its output matches the
regex, fails otherwise (a clean run means the bug was not found within the budget).

  expect_crash.py REGEX COMMAND [ARGS...]
"""
import re
import subprocess
import sys

pattern, cmd = sys.argv[1], sys.argv[2:]
r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
found = re.search(pattern, r.stdout)
for line in r.stdout.splitlines():
    if "fuzz_ops:" in line or line.startswith(("#", "Done", "stat::")) and ("DONE" in line or "NEW" not in line):
        print(line)
if r.returncode == 0 or not found:
    print(f"expect_crash: exit {r.returncode}, pattern {'found' if found else 'not found'}: {pattern}")
    sys.exit(1)
print(f"expect_crash: found as expected (exit {r.returncode}): {found.group(0)}")
