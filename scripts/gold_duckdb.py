"""The Gold tables of backend/src/gold/ computed by DuckDB with SQL, from the
same Silver Parquet, for `clickstream bench gold --duckdb PYTHON`.

Usage: gold_duckdb.py DATA_DIR OUT_DIR
Prints one JSON line: {"seconds": s, "rows": n, "peak_rss_mib": m}.
"""
import json
import resource
import sys
import time

import duckdb

data_dir, out_dir = sys.argv[1], sys.argv[2]
GAP_MS = 30 * 60_000
BOT_EVENTS = 50

TABLES = {
    "bot_anomalies": f"""
        SELECT site_id, anonymous_id, date_trunc('minute', event_ts) AS window_start,
               date_trunc('minute', event_ts) + INTERVAL 1 MINUTE AS window_end, count(*) AS events
        FROM silver GROUP BY ALL HAVING count(*) > {BOT_EVENTS}""",
    "traffic_1m": """
        SELECT site_id, date_trunc('minute', event_ts) AS window_start,
               date_trunc('minute', event_ts) + INTERVAL 1 MINUTE AS window_end, count(*) AS events,
               count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
               count(DISTINCT anonymous_id) AS active_users, count(DISTINCT session_key) AS sessions
        FROM sessionized GROUP BY ALL""",
    "top_pages_1h": """
        SELECT *, rank() OVER (PARTITION BY site_id, hour_start ORDER BY views DESC) AS rank FROM (
          SELECT site_id, date_trunc('hour', event_ts) AS hour_start, page_path, count(*) AS views,
                 count(DISTINCT anonymous_id) AS unique_visitors
          FROM human WHERE event_type = 'page_view' GROUP BY ALL)""",
    "revenue_5m": """
        SELECT site_id, time_bucket(INTERVAL 5 MINUTE, event_ts) AS window_start,
               time_bucket(INTERVAL 5 MINUTE, event_ts) + INTERVAL 5 MINUTE AS window_end, product_id,
               sum(revenue) AS revenue, count(DISTINCT order_id) AS orders, sum(quantity) AS units
        FROM human WHERE event_type = 'purchase' GROUP BY ALL""",
    "sessions": """
        SELECT site_id, session_key AS session_id, any_value(anonymous_id) AS anonymous_id,
               arg_max(user_id, event_ts) FILTER (WHERE user_id IS NOT NULL) AS user_id,
               min(event_ts) AS session_start, max(event_ts) AS session_end,
               epoch_ms(max(event_ts)) - epoch_ms(min(event_ts)) AS duration_ms, count(*) AS events,
               count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
               arg_min(page_path, event_ts) FILTER (WHERE event_type = 'page_view') AS entry_page,
               arg_max(page_path, event_ts) FILTER (WHERE event_type = 'page_view') AS exit_page,
               count(*) FILTER (WHERE event_type = 'page_view') = 1 AS bounced,
               bool_or(event_type = 'purchase') AS converted,
               coalesce(sum(revenue) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,
               arg_min(utm_source, event_ts) AS utm_source, arg_min(utm_medium, event_ts) AS utm_medium,
               arg_min(utm_campaign, event_ts) AS utm_campaign, arg_min(country, event_ts) AS country,
               arg_min(device_type, event_ts) AS device_type, arg_min(browser, event_ts) AS browser
        FROM sessionized GROUP BY site_id, session_key""",
    "funnel_1h": """
        WITH v AS (SELECT *, min(CASE WHEN event_type = 'page_view' AND product_id IS NOT NULL THEN t END)
                     OVER (PARTITION BY site_id, session_key) AS view_t FROM sessionized),
             c AS (SELECT *, min(CASE WHEN event_type = 'add_to_cart' AND t >= view_t THEN t END)
                     OVER (PARTITION BY site_id, session_key) AS cart_t FROM v),
             k AS (SELECT *, min(CASE WHEN event_type = 'begin_checkout' AND t >= cart_t THEN t END)
                     OVER (PARTITION BY site_id, session_key) AS checkout_t FROM c),
             p AS (SELECT *, min(CASE WHEN event_type = 'purchase' AND t >= checkout_t THEN t END)
                     OVER (PARTITION BY site_id, session_key) AS purchase_t FROM k),
             s AS (SELECT site_id, session_key, min(session_start) AS session_start, min(view_t) AS v,
                          min(cart_t) AS c, min(checkout_t) AS k, min(purchase_t) AS p
                   FROM p GROUP BY ALL)
        SELECT site_id, date_trunc('hour', session_start) AS hour_start, count(*) AS sessions,
               count(v) AS product_views, count(c) AS add_to_carts, count(k) AS checkouts, count(p) AS purchases,
               count(v) / nullif(count(*), 0) AS view_rate, count(c) / nullif(count(v), 0) AS cart_rate,
               count(k) / nullif(count(c), 0) AS checkout_rate, count(p) / nullif(count(k), 0) AS purchase_rate,
               count(p) / nullif(count(*), 0) AS conversion_rate
        FROM s GROUP BY ALL""",
    "product_performance_1h": """
        SELECT *, add_to_carts / nullif(views, 0) AS view_to_cart_rate,
               purchases / nullif(add_to_carts, 0) AS cart_to_purchase_rate,
               greatest(0, 1 - purchases / nullif(add_to_carts, 0)) AS cart_abandonment_rate FROM (
          SELECT site_id, date_trunc('hour', event_ts) AS hour_start, product_id,
                 count(*) FILTER (WHERE event_type = 'page_view') AS views,
                 count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
                 coalesce(sum(quantity) FILTER (WHERE event_type = 'add_to_cart'), 0) AS units_added,
                 count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
                 coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0) AS units_sold,
                 coalesce(sum(revenue) FILTER (WHERE event_type = 'purchase'), 0) AS revenue
          FROM human WHERE product_id IS NOT NULL
            AND event_type IN ('page_view', 'add_to_cart', 'purchase') GROUP BY ALL)""",
    "dim_users": """
        SELECT site_id, anonymous_id, arg_max(user_id, session_start) FILTER (WHERE user_id IS NOT NULL) AS user_id,
               min(session_start) AS first_seen, max(session_end) AS last_seen, count(*) AS sessions,
               sum(revenue) AS lifetime_revenue, count(*) FILTER (WHERE converted) AS purchases_sessions,
               arg_min(utm_source, session_start) AS first_utm_source, arg_min(country, session_start) AS country
        FROM sessions GROUP BY ALL""",
}

started = time.perf_counter()
con = duckdb.connect()
con.execute(f"CREATE VIEW silver AS SELECT * FROM read_parquet('{data_dir}/silver/events/**/*.parquet', hive_partitioning = 1)")
rows = 0
con.execute(f"CREATE TEMP TABLE bot_anomalies AS {TABLES['bot_anomalies']}")
con.execute("""CREATE TEMP TABLE human AS SELECT s.* FROM silver s WHERE NOT s.is_bot AND NOT EXISTS
    (SELECT 1 FROM bot_anomalies b WHERE b.site_id = s.site_id AND b.anonymous_id = s.anonymous_id)""")
con.execute(f"""CREATE TEMP TABLE sessionized AS
    WITH g AS (SELECT *, epoch_ms(event_ts) AS t,
                      epoch_ms(event_ts) - lag(epoch_ms(event_ts)) OVER w AS gap
               FROM human WINDOW w AS (PARTITION BY site_id, anonymous_id ORDER BY event_ts, event_id)),
         n AS (SELECT *, sum(CASE WHEN gap IS NULL OR gap > {GAP_MS} THEN 1 ELSE 0 END)
                      OVER (PARTITION BY site_id, anonymous_id ORDER BY event_ts, event_id
                            ROWS UNBOUNDED PRECEDING) AS session_no FROM g)
    SELECT *, min(event_ts) OVER (PARTITION BY site_id, anonymous_id, session_no) AS session_start,
           anonymous_id || ':' || epoch_ms(min(event_ts) OVER (PARTITION BY site_id, anonymous_id, session_no)) AS session_key
    FROM n""")
con.execute(f"CREATE TEMP TABLE sessions AS {TABLES['sessions']}")
for name, sql in TABLES.items():
    if name not in ("bot_anomalies", "sessions"):
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
    con.execute(f"COPY {name} TO '{out_dir}/{name}.parquet' (FORMAT parquet)")
    rows += con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": peak}))
