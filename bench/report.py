"""Prints the benchmark table from the outputs bench/run.sh leaves in a directory.

    python3 bench/report.py OUT_DIR

OUT_DIR holds one wrk output per run (NAME.txt), runs.tsv (per run: server
CPU ticks, PostgreSQL backends' CPU ticks, their number, backends gone during
the run, the idle servers' CPU ticks, the server's largest sampled RSS in KiB,
audit events written), 
pgbench.txt, parity.txt and meta (key=value).
"""
import os
import re
import statistics
import sys

out = sys.argv[1]
meta = dict(line.strip().split("=", 1) for line in open(os.path.join(out, "meta")) if "=" in line)
tck = int(meta["tck"])
rounds = int(meta["rounds"])


def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


runs = {}
for line in open(os.path.join(out, "runs.tsv")):
    name, *numbers = line.rstrip("\n").split("\t")
    runs[name] = dict(zip(("server", "pg", "backends", "gone", "idle", "rss", "audit"), map(int, numbers)))


def run(name):
    """One wrk run with its CPU figures."""
    text = open(os.path.join(out, f"{name}.txt")).read()
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    cpu = runs[name]
    per_request = lambda t: t * 1e6 / tck / requests if requests else float("nan")
    return dict(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        p50=ms(re.search(r"\s50%\s+(\S+)", text).group(1)),
        p99=ms(re.search(r"\s99%\s+(\S+)", text).group(1)),
        requests=requests,
        bad=int(bad.group(1)) if bad else 0,
        errors=sum(map(int, errors.groups())) if errors else 0,
        server_us=per_request(cpu["server"]),
        pg_us=per_request(cpu["pg"]) if cpu["backends"] or cpu["pg"] else None,
        gone=cpu["gone"],
        idle_ticks=cpu["idle"],
        rss=cpu["rss"],
        audit=cpu["audit"] / requests if requests else float("nan"),
        seconds=float(re.search(r"requests in ([\d.]+)s", text).group(1)),
    )


def median_of(results):
    """Median of each figure over rounds; counts are summed."""
    merged = {}
    for key in ("rps", "p50", "p99", "server_us", "audit"):
        merged[key] = statistics.median(r[key] for r in results)
    pg = [r["pg_us"] for r in results if r["pg_us"] is not None]
    merged["pg_us"] = statistics.median(pg) if pg else None
    for key in ("bad", "errors", "gone"):
        merged[key] = sum(r[key] for r in results)
    merged["rss"] = max(r["rss"] for r in results)
    return merged


pgbench_text = open(os.path.join(out, "pgbench.txt")).read()
tps = float(re.search(r"tps = ([\d.]+)", pgbench_text).group(1))

ours = {s: [run(f"{s}-ours-{i}") for i in range(1, rounds + 1)] for s in ("get", "list")}
ref = {s: [run(f"{s}-ref-{i}") for i in range(1, rounds + 1)] for s in ("get", "list")}
sqlite = {s: [run(f"sqlite-{s}-{i}") for i in range(1, rounds + 1)] for s in ("get", "list", "create")}
many = {who: run(f"get-many-{who}") for who in ("ours", "ref")}


def ratio(pairs):
    values = [a["rps"] / b["rps"] for a, b in pairs]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


header = (
    f"{'scenario':34} {'server':9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'srv us/req':>10} {'PG us/req':>9} {'audit/req':>9} {'x pgb':>6} {'ours/ref req/s':>22} {'bad':>4}"
)


def row(label, server, r, pair="", pgbench=True):
    pg = f"{r['pg_us']:9.0f}" if r["pg_us"] is not None else f"{'-':>9}"
    vs = f"{r['rps'] / tps:6.2f}" if pgbench else f"{'-':>6}"
    bad = r["bad"] + r["errors"]
    print(
        f"{label:34} {server:9} {r['rps']:8,.0f} {r['p50']:7.2f} {r['p99']:7.2f} "
        f"{r['server_us']:10.0f} {pg} {r['audit']:9.2f} {vs} {pair:>22} {bad:4d}"
    )


conns, duration = meta["conns"], meta["duration"]
print()
print(
    f"PostgreSQL, {int(meta['patients']):,} patients, {conns} connections, {duration}s per run, "
    f"server pool {meta['pool']}; pgbench -S: {tps:,.0f} tps"
)
print(
    f"get/list: median of {rounds} interleaved rounds (ours, reference, ours, ...); ours/ref: req/s ratio "
    "of each pair, median (min..max); within 1.6x of the reference means >= 0.625"
)
print(header)
for scenario, label in (("get", "get-patient"), ("list", "list-patients (page of 20)")):
    row(label, "ours", median_of(ours[scenario]), ratio(zip(ours[scenario], ref[scenario])))
    row("", "reference", median_of(ref[scenario]))
others = [
    ("list-patients, filtered + ordered", "list-filtered"),
    ("create-patient", "create-patient"),
    ("list a patient's doctors", "patient-doctors"),
    ("login (Argon2id)", "login"),
    ("get-patient while logins run", "get-patient-under-login"),
    ("list-patients @ 10k patients", "list-10k"),
]
single = {}
for label, name in others:
    single[name] = run(name)
    row(label, "ours", single[name])
m = many
row(f"get-patient @ {meta['many']} connections", "ours", m["ours"], ratio([(m["ours"], m["ref"])]))
row("", "reference", m["ref"])
print()
print(f"SQLite, {int(meta['sqlite_patients']):,} patients, {conns} connections, median of {rounds} rounds (ours only)")
for scenario, label in (("get", "get-patient"), ("list", "list-patients (page of 20)"), ("create", "create-patient")):
    row(label, "ours", median_of(sqlite[scenario]), pgbench=False)
print()

print("Per round (req/s):")
for scenario in ("get", "list"):
    pairs = zip(ours[scenario], ref[scenario])
    print(f"  {scenario:5} " + "  ".join(f"{a['rps']:,.0f}/{b['rps']:,.0f}={a['rps'] / b['rps']:.2f}" for a, b in pairs))
print()

mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
print("Memory (largest RSS sampled every 0.2 s during the runs):")
print(
    f"  {conns} connections, get-patient: ours {mib(max(r['rss'] for r in ours['get']))}, "
    f"reference {mib(max(r['rss'] for r in ref['get']))}"
)
print(f"  {meta['many']} connections, get-patient: ours {mib(m['ours']['rss'])}, reference {mib(m['ref']['rss'])}")
print(f"  peak over the whole PostgreSQL run (VmHWM): ours {mib(meta['hwm_ours'])}, reference {mib(meta['hwm_ref'])}")
print(f"  SQLite run: ours {mib(max(r['rss'] for rs in sqlite.values() for r in rs))}")
print()

interleaved = ours["get"] + ref["get"] + ours["list"] + ref["list"]
idle_ms = sum(r["idle_ticks"] for r in interleaved) * 1000 / tck
seconds = sum(r["seconds"] for r in interleaved)
print(
    f"The idle server during the other's rounds: {idle_ms:.0f} ms CPU over {seconds:.0f} s "
    f"({idle_ms / seconds / 10:.2f}% of a core; clock tick {1000 / tck:.0f} ms)"
)
gone = sum(r["gone"] for r in interleaved)
if gone:
    print(f"warning: {gone} PostgreSQL backends ended during a round: their CPU is missing from PG us/req")
failed = [n for n, r in list(single.items()) + [("get-many-" + k, v) for k, v in m.items()] if r["bad"] or r["errors"]]
failed += [f"{s}-{w}" for s in ("get", "list") for w, rs in (("ours", ours[s]), ("ref", ref[s])) if any(r["bad"] or r["errors"] for r in rs)]
if failed:
    print(f"non-2xx answers or socket errors (column 'bad') in: {', '.join(failed)}")
parity = open(os.path.join(out, "parity.txt")).read().strip().splitlines()
print(f"Same answers from both servers: {parity[-1].strip() if parity else 'not checked'}")
large, small = median_of(ours["list"]), single["list-10k"]
print(
    f"list page cost, {int(meta['patients']):,} vs 10k patients: p50 {large['p50'] / small['p50']:.2f}x, "
    f"throughput {small['rps'] / large['rps']:.2f}x"
)
quiet, busy = median_of(ours["get"]), single["get-patient-under-login"]
print(f"get-patient p99 with logins alongside: {busy['p99'] / quiet['p99']:.2f}x its quiet p99")
