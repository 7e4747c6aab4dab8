"""Row-for-row check of scripts/gold_duckdb.py against the Polars Gold.

Usage: gold_compare.py DATA_DIR DUCK_DIR
DATA_DIR holds Silver and the Polars Gold (gold/<table>/dt=.../part-HH.parquet),
DUCK_DIR the tables gold_duckdb.py wrote from that Silver (<table>.parquet).

For each of the twenty-three tables: the column names must be the same, in the same
order, once the Polars-only columns are dropped (`dt`, the hive partition,
and `is_final`, which the pipeline's watermark sets, not Silver), and so must
their types as DuckDB reads them. Both sides are then sorted by every column
(non-float columns first, so each table's key decides the order) and compared
row by row: equal, nulls equal to nulls, floats within 1e-6 relative.
Prints one line per table and exits 1 if any differs.
"""
import sys

import duckdb

TABLES = ["bot_anomalies", "traffic_1m", "top_pages_1h", "page_transitions_1h", "revenue_5m", "conversion_10m",
          "sessions", "funnel_1h", "entry_pages_1h", "exit_pages_1h", "sources_1h", "product_performance_1h", "goals_1h",
          "custom_events_1h", "link_clicks_1h", "engagement_1h", "dim_users", "dim_pages", "dim_products", "identity_map", "dim_date",
          "retention_weekly", "retention_daily"]
POLARS_ONLY = ["dt", "is_final"]
FLOATS = ("DOUBLE", "FLOAT")
REL_TOL = 1e-6
SHOWN = 3


def columns(con, relation):
    return [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {relation}").fetchall()]


def compare(con, data_dir, duck_dir, name):
    con.execute(f"CREATE OR REPLACE TEMP VIEW duck AS FROM read_parquet('{duck_dir}/{name}.parquet')")
    duck_cols = columns(con, "duck")
    glob = f"{data_dir}/gold/{name}/**/*.parquet"
    if not con.execute(f"SELECT count(*) FROM glob('{glob}')").fetchone()[0]:
        # Polars writes no file for an empty table.
        n = con.execute("SELECT count(*) FROM duck").fetchone()[0]
        return n == 0, f"{name}: Polars has no rows, DuckDB {n}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW polars_all AS FROM read_parquet('{glob}', hive_partitioning = true)")
    dropped = [n for n, _ in columns(con, "polars_all") if n in POLARS_ONLY]
    con.execute(f"CREATE OR REPLACE TEMP VIEW polars AS SELECT * EXCLUDE ({', '.join(dropped)}) FROM polars_all")
    polars_cols = columns(con, "polars")
    if [n for n, _ in polars_cols] != [n for n, _ in duck_cols]:
        return False, f"{name}: columns differ: Polars {polars_cols}, DuckDB {duck_cols}"
    types = [f"{n} {p} vs {d}" for (n, p), (_, d) in zip(polars_cols, duck_cols) if p != d]
    counts = con.execute("SELECT (SELECT count(*) FROM polars), (SELECT count(*) FROM duck)").fetchone()

    floats = [n for n, kind in polars_cols if kind in FLOATS]
    order = ", ".join(f'"{n}" NULLS FIRST' for n, _ in polars_cols if n not in floats)
    order = ", ".join(x for x in [order] + [f'"{n}" NULLS FIRST' for n in floats] if x)

    def same(n):
        a, b = f'p."{n}"', f'd."{n}"'
        if n in floats:
            return (f"(({a} IS NULL AND {b} IS NULL) OR "
                    f"abs({a} - {b}) <= {REL_TOL} * greatest(abs({a}), abs({b})) + 1e-12)")
        return f"{a} IS NOT DISTINCT FROM {b}"

    # Rows paired by rank in that order; a row present on one side only pairs
    # with nulls, so it counts as a difference too.
    names = [n for n, _ in polars_cols]
    con.execute(f"""CREATE OR REPLACE TEMP TABLE paired AS
        SELECT p.rn AS p_rn, d.rn AS d_rn, {', '.join(f'p."{n}" AS "p.{n}", d."{n}" AS "d.{n}"' for n in names)},
               {' AND '.join(same(n) for n in names)} AS equal
        FROM (SELECT row_number() OVER (ORDER BY {order}) AS rn, * FROM polars) p
        FULL JOIN (SELECT row_number() OVER (ORDER BY {order}) AS rn, * FROM duck) d ON p.rn = d.rn""")
    differing = con.execute("SELECT count(*) FROM paired WHERE NOT coalesce(equal, false)").fetchone()[0]
    line = f"{name}: {counts[0]} Polars rows, {counts[1]} DuckDB rows, {len(names)} columns compared"
    ok = differing == 0 and counts[0] == counts[1] and not types
    if types:
        line += f"; types differ: {types}"
    if differing:
        by_col = con.execute(f"""SELECT {', '.join(f'count(*) FILTER (WHERE "p.{n}" IS DISTINCT FROM "d.{n}")'
                                                 for n in names)} FROM paired WHERE NOT coalesce(equal, false)""")
        by_col = [f"{n} {k}" for n, k in zip(names, by_col.fetchone()) if k]
        line += f"; {differing} rows differ (columns: {', '.join(by_col)})"
        for row in con.execute(f"SELECT * EXCLUDE (equal) FROM paired WHERE NOT coalesce(equal, false) "
                               f"ORDER BY coalesce(p_rn, d_rn) LIMIT {SHOWN}").fetchall():
            line += f"\n    {row}"
    else:
        line += ": equal row for row" if ok else ""
    return ok, line


def main():
    data_dir, duck_dir = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute("SET threads = 2")
    failed = 0
    for name in TABLES:
        ok, line = compare(con, data_dir, duck_dir, name)
        print(("ok   " if ok else "DIFF ") + line, flush=True)
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
