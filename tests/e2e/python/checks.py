"""checks.py — the failure list the Python package's e2e tests share: check() records and prints
a failed condition, run_each() runs test functions so that one's exception is its failure alone,
finish() gives the exit code. Not a test framework."""

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run_each(tests, *args):
    """Each test(*args); an exception a test did not expect is its failure, the others still
    run."""
    for test in tests:
        try:
            test(*args)
        except Exception as e:  # noqa: BLE001
            check(False, f"{test.__name__}: {type(e).__name__}: {str(e)[:300]}")


def finish():
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0
