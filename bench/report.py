"""Prints the benchmark table from wrk and pgbench outputs."""
import os
import re
import sys

out, rss_kib, conns, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(name):
    text = open(os.path.join(out, f"{name}.txt")).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return rps, p50, p99, int(bad.group(1)) if bad else 0, errors.group(0) if errors else ""


pgbench_text = open(os.path.join(out, "pgbench.txt")).read()
tps = float(re.search(r"tps = ([\d.]+)", pgbench_text).group(1))

rows = [
    ("get-patient", "get-patient"),
    ("list-patients (20 a page)", "list-patients"),
    ("list-patients, filtered + ordered", "list-filtered"),
    ("create-patient", "create-patient"),
    ("list a patient's doctors", "patient-doctors"),
    ("login (Argon2id)", "login"),
    ("get-patient while logins run", "get-patient-under-login"),
    ("list-patients @ 10k patients", "list-10k"),
]
print()
print(f"{conns} connections, {duration}s per scenario; pgbench -S: {tps:,.0f} tps")
print(f"{'scenario':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs pgbench':>10} {'non-2xx':>8}")
results = {}
for label, name in rows:
    rps, p50, p99, bad, errors = wrk(name)
    results[name] = (rps, p50, p99)
    print(f"{label:36} {rps:9,.0f} {p50:8.2f} {p99:8.2f} {rps / tps:10.2f} {bad:8d} {errors}")
print()
small, large = results["list-10k"], results["list-patients"]
print(f"list page cost, 1M vs 10k patients: p50 {large[1] / small[1]:.2f}x, throughput {small[0] / large[0]:.2f}x")
quiet, busy = results["get-patient"], results["get-patient-under-login"]
print(f"get-patient p99 with logins alongside: {busy[2] / quiet[2]:.2f}x its quiet p99")
print(f"server peak RSS: {rss_kib / 1024:.1f} MiB")
