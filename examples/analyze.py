"""What an analyst does first with the clickstream tables: load Silver and
Gold with Polars, look at sessions, the funnel and revenue, and check the
same numbers with DuckDB over the same files.

    pip install polars duckdb
    python examples/analyze.py            # the demo's ./data
    python examples/analyze.py DATA_DIR --json
    python examples/analyze.py s3://bucket/prefix   # a data directory on S3

On S3, Polars and DuckDB take the bucket's settings from the usual AWS
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and
AWS_ENDPOINT_URL for an S3-compatible server); DuckDB needs its httpfs
extension.

Every table and column is described in docs/analysts.md.
"""

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import polars as pl


def is_s3(data: str) -> bool:
    return data.startswith("s3://")


def storage_options() -> dict:
    """Polars' settings for the bucket, from the AWS environment."""
    env = {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "aws_session_token": "AWS_SESSION_TOKEN",
        "aws_region": "AWS_REGION",
        "aws_endpoint_url": "AWS_ENDPOINT_URL",
    }
    options = {key: os.environ[var] for key, var in env.items() if os.environ.get(var)}
    if options.get("aws_endpoint_url", "").startswith("http://"):
        options["aws_allow_http"] = "true"
    return options


def scan(data: str, table: str) -> pl.LazyFrame:
    """A table of the data directory, with its dt/hour partition columns."""
    files = f"{data.rstrip('/')}/{table}/**/*.parquet"
    if is_s3(data):
        return pl.scan_parquet(files, hive_partitioning=True, storage_options=storage_options())
    return pl.scan_parquet(files, hive_partitioning=True)


def analyze(data: str) -> dict:
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

    # The star schema: Silver (the facts) joined to a dimension on its key.
    # Human page views per page title, from dim_pages.
    try:
        titles = (
            events.filter((pl.col("event_type") == "page_view") & ~pl.col("is_bot"))
            .join(scan(data, "gold/dim_pages").select("site_id", "page_path", "title"),
                  on=["site_id", "page_path"], how="left")
            .group_by("title")
            .agg(pl.len().alias("views"))
            .sort(["views", "title"], descending=[True, False], nulls_last=True)
            .head(5)
            .collect()
            .rows()
        )
    except (FileNotFoundError, pl.exceptions.ComputeError):
        titles = None  # a data directory from before dim_pages

    # Products by name (dim_products), and revenue by weekday: Gold's
    # revenue windows joined to the calendar (dim_date) on their day.
    try:
        names = scan(data, "gold/dim_products").select("site_id", "product_id", "name").collect()
        # One name per product id across sites: the first site's.
        names = names.sort("site_id").unique("product_id", keep="first").select("product_id", "name")
        top_products = by_product.head(5).join(names, on="product_id", how="left", maintain_order="left").rows()
        weekdays = (
            revenue.with_columns(pl.col("window_start").dt.date().alias("date"))
            .join(scan(data, "gold/dim_date").select("date", "weekday", "weekday_name"), on="date")
            .group_by("weekday", "weekday_name")
            .agg(pl.col("revenue").sum())
            .sort("weekday")
            .select("weekday_name", "revenue")
            .collect()
            .rows()
        )
    except (FileNotFoundError, pl.exceptions.ComputeError):
        # A data directory from before dim_products and dim_date.
        top_products = [(*row, None) for row in by_product.head(5).rows()]
        weekdays = None

    return {
        "top_page_titles": titles,
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
        "top_products": top_products,
        "revenue_by_weekday": weekdays,
    }


def duckdb_s3(con) -> None:
    """DuckDB's httpfs, and a secret from the AWS environment."""
    con.execute("LOAD httpfs")
    settings = {"TYPE": "s3", "REGION": os.environ.get("AWS_REGION", "us-east-1")}
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        settings["KEY_ID"] = os.environ["AWS_ACCESS_KEY_ID"]
        settings["SECRET"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:  # an S3-compatible server: host:port, path-style URLs
        url = urlparse(endpoint)
        settings.update(ENDPOINT=url.netloc, URL_STYLE="path", USE_SSL=url.scheme == "https")
    quoted = ", ".join(f"{k} {v if isinstance(v, bool) else repr(v)}" for k, v in settings.items())
    con.execute(f"CREATE SECRET lake ({quoted})")


def duckdb_check(data: str) -> dict:
    """The headline numbers again, computed by DuckDB from the same files."""
    import duckdb

    con = duckdb.connect()  # in memory: it only reads the Parquet
    if is_s3(data):
        try:
            duckdb_s3(con)
        except duckdb.Error as e:
            # httpfs is downloaded on first use; offline it may be missing.
            return {"skipped": f"DuckDB cannot read S3 here: {str(e).splitlines()[0]}"}

    def one(sql: str):
        return con.execute(sql).fetchone()[0]

    read = lambda table: f"read_parquet('{data.rstrip('/')}/{table}/**/*.parquet', hive_partitioning = 1)"
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
    data = args[0] if args else "data"
    if not is_s3(data) and not (Path(data) / "gold" / "sessions").is_dir():
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
    if numbers["top_page_titles"] is not None:
        print("\nMost viewed pages by title (Silver joined to dim_pages):")
        for title, views in numbers["top_page_titles"]:
            print(f"  {views:>8,}  {title or '(no title)'}")
    print(f"\nRevenue: {numbers['revenue']:,.2f}; top products (names from dim_products):")
    for product, amount, units, name in numbers["top_products"]:
        print(f"  {product:<8} {amount:>12,.2f}  {units:>6,} units  {name or ''}")
    if numbers["revenue_by_weekday"] is not None:
        print("\nRevenue by weekday (revenue_5m joined to dim_date):")
        for weekday, amount in numbers["revenue_by_weekday"]:
            print(f"  {weekday:<10} {amount:>12,.2f}")
    d = numbers["duckdb"]
    if "skipped" in d:
        print(f"\n{d['skipped']}")
        return
    same = (d["events"] == numbers["events"] and d["sessions"] == numbers["sessions"]
            and d["purchases"] == numbers["funnel"]["purchases"] and abs((d["revenue"] or 0) - numbers["revenue"]) < 1e-6)
    print(f"\nDuckDB over the same files: {d['events']:,} events, {d['sessions']:,} sessions, "
          f"{d['purchases']:,} purchases, {d['revenue'] or 0:,.2f} revenue: {'the same' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
