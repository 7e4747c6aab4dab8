"""What an analyst does first with the clickstream tables: load Silver and
Gold with Polars, look at sessions, the funnel and revenue, and check the
same numbers with DuckDB over the same files.

    pip install polars duckdb
    python examples/analyze.py            # the demo's ./data
    python examples/analyze.py DATA_DIR --json

Every table and column is described in docs/analysts.md.
"""

import json
import sys
from pathlib import Path

import polars as pl


def scan(data: Path, table: str) -> pl.LazyFrame:
    """A table of the data directory, with its dt/hour partition columns."""
    return pl.scan_parquet(data / table / "**" / "*.parquet", hive_partitioning=True)


def analyze(data: Path) -> dict:
    events = scan(data, "silver/events")
    sessions = scan(data, "gold/sessions")
    funnel = scan(data, "gold/funnel_1h")
    revenue = scan(data, "gold/revenue_5m")

    overview = events.select(
        pl.len().alias("events"),
        pl.col("anonymous_id").n_unique().alias("visitors"),
        pl.col("is_bot").sum().alias("bot_events"),
        pl.col("event_ts").min().alias("first_event"),
        pl.col("event_ts").max().alias("last_event"),
    ).collect()

    visits = sessions.select(
        pl.len().alias("sessions"),
        pl.col("bounced").mean().alias("bounce_rate"),
        pl.col("converted").mean().alias("conversion_rate"),
        (pl.col("duration_ms").mean() / 1000).alias("mean_seconds"),
    ).collect()
    entry_pages = (
        sessions.group_by("entry_page")
        .agg(pl.len().alias("sessions"))
        .sort(["sessions", "entry_page"], descending=[True, False])
        .head(5)
        .collect()
    )

    steps = ["sessions", "product_views", "add_to_carts", "checkouts", "purchases"]
    totals = funnel.select(pl.col(steps).sum()).collect()

    by_product = (
        revenue.group_by("product_id")
        .agg(pl.col("revenue").sum(), pl.col("units").sum())
        .sort(["revenue", "product_id"], descending=[True, False])
        .collect()
    )

    return {
        "events": overview["events"][0],
        "visitors": overview["visitors"][0],
        "bot_events": overview["bot_events"][0],
        "first_event": str(overview["first_event"][0]),
        "last_event": str(overview["last_event"][0]),
        "sessions": visits["sessions"][0],
        "bounce_rate": visits["bounce_rate"][0],
        "conversion_rate": visits["conversion_rate"][0],
        "mean_session_seconds": visits["mean_seconds"][0],
        "entry_pages": entry_pages.rows(),
        "funnel": {step: totals[step][0] for step in steps},
        "revenue": by_product["revenue"].sum(),
        "top_products": by_product.head(5).rows(),
    }


def duckdb_check(data: Path) -> dict:
    """The headline numbers again, computed by DuckDB from the same files."""
    import duckdb

    con = duckdb.connect()  # in memory: it only reads the Parquet

    def one(sql: str):
        return con.execute(sql).fetchone()[0]

    read = lambda table: f"read_parquet('{data / table}/**/*.parquet', hive_partitioning = 1)"
    return {
        "events": one(f"SELECT count(*) FROM {read('silver/events')}"),
        "sessions": one(f"SELECT count(*) FROM {read('gold/sessions')}"),
        "purchases": one(f"SELECT sum(purchases) FROM {read('gold/funnel_1h')}"),
        "revenue": one(f"SELECT sum(revenue) FROM {read('gold/revenue_5m')}"),
    }


def percent(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data = Path(args[0] if args else "data")
    if not (data / "gold" / "sessions").is_dir():
        sys.exit(f"{data}: no Gold tables yet (run `bash scripts/demo.sh` first, or pass the data directory)")
    numbers = analyze(data)
    numbers["duckdb"] = duckdb_check(data)
    if "--json" in sys.argv:
        print(json.dumps(numbers, default=str))
        return

    print(f"Silver: {numbers['events']:,} events from {numbers['visitors']:,} visitors "
          f"({numbers['bot_events']:,} from bots), {numbers['first_event']} to {numbers['last_event']} UTC")
    print(f"\nSessions: {numbers['sessions']:,}; bounce rate {percent(numbers['bounce_rate'])}, "
          f"conversion {percent(numbers['conversion_rate'])}, mean length {numbers['mean_session_seconds'] or 0:.0f} s")
    print("  entry pages: " + ", ".join(f"{page} ({n:,})" for page, n in numbers["entry_pages"]))
    print("\nFunnel (each step after the one before, in the same session):")
    previous = None
    for step, n in numbers["funnel"].items():
        rate = "" if previous is None else f"  {percent(n / previous if previous else None)} of the step before"
        print(f"  {step:<14} {n:>8,}{rate}")
        previous = n
    print(f"\nRevenue: {numbers['revenue']:,.2f}; top products:")
    for product, amount, units in numbers["top_products"]:
        print(f"  {product:<8} {amount:>12,.2f}  {units:>6,} units")
    d = numbers["duckdb"]
    same = (d["events"] == numbers["events"] and d["sessions"] == numbers["sessions"]
            and d["purchases"] == numbers["funnel"]["purchases"] and abs((d["revenue"] or 0) - numbers["revenue"]) < 1e-6)
    print(f"\nDuckDB over the same files: {d['events']:,} events, {d['sessions']:,} sessions, "
          f"{d['purchases']:,} purchases, {d['revenue'] or 0:,.2f} revenue: {'the same' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
