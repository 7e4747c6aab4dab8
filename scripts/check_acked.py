"""Exactly once, from the sender's side: what `clickstream generate --out`
recorded as acknowledged against what Silver and rejects hold.

Usage: check_acked.py CLICKSTREAM_BIN DATA_DIR SENT.ndjson...

Queries Silver and rejects of DATA_DIR with `clickstream query`, prints
figures, then one TAP line per check ("ok - ..." / "not ok - ..."): every
acknowledged valid event is in Silver once, Silver holds nothing else, and
every acknowledged bad row is in rejects by its reason. Used by
scripts/chaos.sh and scripts/container-test.sh.
"""
import csv, json, shutil, subprocess, sys, tempfile

binary, data, *sent_files = sys.argv[1:]


def query(sql, path):
    with open(path, "w") as out:
        return subprocess.run([binary, "query", "--data-dir", data, "--format", "csv", sql],
                              stdout=out, stderr=subprocess.DEVNULL).returncode


work = tempfile.mkdtemp(prefix="check-acked.")
silver_csv, rejects_csv = f"{work}/silver.csv", f"{work}/rejects.csv"
if query("SELECT site_id, event_id, count(*) AS n FROM silver_events GROUP BY site_id, event_id", silver_csv):
    sys.exit(f"clickstream query of Silver in {data} failed")
# No rejects table yet is no rejects.
if query("SELECT reason, count(*) AS n FROM rejects GROUP BY reason", rejects_csv):
    open(rejects_csv, "w").close()
acked, malformed, sends = set(), {}, 0
for path in sent_files:
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            sends += 1
            if e["expect"] == "accepted":
                acked.add((e["site_id"], e["event"]["event_id"]))
            else:
                malformed[e["expect"]] = malformed.get(e["expect"], 0) + 1
silver, dups = set(), 0
with open(silver_csv) as f:
    for row in csv.DictReader(f):
        silver.add((row["site_id"], row["event_id"]))
        dups += int(row["n"]) - 1
rejects = {}
with open(rejects_csv) as f:
    for row in csv.DictReader(f):
        rejects[row["reason"]] = int(row["n"])
shutil.rmtree(work)
missing = acked - silver
extra = silver - acked
short = {r: (n, rejects.get(r, 0)) for r, n in malformed.items() if rejects.get(r, 0) < n}
print(f"figures: acknowledged sends {sends}, distinct valid events acknowledged {len(acked)}, "
      f"in Silver {len(silver)}, duplicates in Silver {dups}, acknowledged but missing {len(missing)}, "
      f"in Silver but not acknowledged {len(extra)}")
print(f"figures: rejects expected (acknowledged bad rows) {sum(malformed.values())}, found {sum(rejects.values())}; by reason expected {dict(sorted(malformed.items()))}, found {dict(sorted(rejects.items()))}")
def tap(ok, what):
    print(("ok" if ok else "not ok") + " - " + what, flush=True)
tap(len(acked) > 0, f"the generator had {len(acked)} distinct valid events acknowledged")
tap(not missing, f"every acknowledged event is in Silver ({len(missing)} missing{', e.g. ' + str(sorted(missing)[:3]) if missing else ''})")
tap(dups == 0, f"no event id twice in Silver ({dups} duplicates)")
# Sent but unacknowledged (a kill after the fsync, before the answer) is
# retried until acknowledged: so Silver holds nothing the sender did not
# finally see acknowledged.
tap(not extra, f"Silver holds only acknowledged events ({len(extra)} others{', e.g. ' + str(sorted(extra)[:3]) if extra else ''})")
tap(not short, f"rejects lose nothing: every acknowledged bad row is in rejects by its reason{' (short: ' + str(short) + ')' if short else ''}")
