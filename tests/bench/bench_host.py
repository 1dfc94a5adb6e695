"""bench_host.py — what the Python benchmarks print about the machine: a figure without the
machine it was measured on is not a figure."""
import platform


def cpu_model():
    """The CPU's name from /proc/cpuinfo ("model name" on x86, "Model" on aarch64), else what
    Python's platform module knows, else "unknown"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
