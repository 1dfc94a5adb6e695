"""checks.py — the failure list the Python package's e2e tests share: check() records and prints
a failed condition, finish() gives the exit code. Not a test framework."""

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def finish():
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0
