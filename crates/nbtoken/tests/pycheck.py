"""What the pynetbox test scripts share: one line per check, and exit non-zero on the first failure.

The scripts import it from their own directory (Python puts a script's directory first on its path).
"""
import sys


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")
