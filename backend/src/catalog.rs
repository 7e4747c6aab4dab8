//! The data dictionary: every table analysts read and every column in it,
//! with its type as Polars reads it. `docs/analysts.md` shows it (a test
//! renders it into that file and fails when the file differs), and a test
//! holds it to the schemas the pipeline actually writes, so neither the
//! page nor this list can drift from the Parquet.

use polars::prelude::{DataType, TimeUnit};

/// A column's type, by its Polars name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Text,
    /// UTC, milliseconds, stored without a time zone.
    Time,
    Date,
    Bool,
    U32,
    U64,
    I32,
    I64,
    F64,
}

impl Type {
    pub fn polars(self) -> DataType {
        match self {
            Type::Text => DataType::String,
            Type::Time => DataType::Datetime(TimeUnit::Milliseconds, None),
            Type::Date => DataType::Date,
            Type::Bool => DataType::Boolean,
            Type::U32 => DataType::UInt32,
            Type::U64 => DataType::UInt64,
            Type::I32 => DataType::Int32,
            Type::I64 => DataType::Int64,
            Type::F64 => DataType::Float64,
        }
    }

    /// The name analysts see in Python Polars.
    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "String",
            Type::Time => "Datetime(ms)",
            Type::Date => "Date",
            Type::Bool => "Boolean",
            Type::U32 => "UInt32",
            Type::U64 => "UInt64",
            Type::I32 => "Int32",
            Type::I64 => "Int64",
            Type::F64 => "Float64",
        }
    }
}

pub struct Column {
    pub name: &'static str,
    pub kind: Type,
    pub about: &'static str,
}

pub struct TableDoc {
    /// The name `clickstream query` registers it under.
    pub name: &'static str,
    /// Where it lives in the data directory.
    pub path: &'static str,
    /// What one row is.
    pub row: &'static str,
    pub about: &'static str,
}

const fn c(name: &'static str, kind: Type, about: &'static str) -> Column {
    Column { name, kind, about }
}

use Type::*;

const SITE: Column = c("site_id", Text, "The site, as the tracker snippet names it.");
const DT: Column = c("dt", Date, "Partition: the UTC day of the table's time column (from the folder name).");
const IS_FINAL: Column = c(
    "is_final",
    Bool,
    "True once the watermark (latest event time minus the allowed lateness, 10 minutes by default) has passed the row's window: it is not expected to change, though a later event can still update it.",
);

/// A prop's column type.
macro_rules! prop_type {
    (Text) => {
        Text
    };
    (Url) => {
        Text
    };
    (Number) => {
        F64
    };
    (Integer) => {
        I64
    };
}

macro_rules! event_columns {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// Silver's columns (Bronze has them too, with the same meaning).
        const EVENT_COLUMNS: &[Column] = &[
            c("event_id", Text, "Made by the tracker and kept across its retries: one row per site and event id."),
            c("event_type", Text, "page_view, click, search, add_to_cart, remove_from_cart, begin_checkout, purchase, identify, custom or page_leave."),
            c("event_ts", Time, "Event time: the browser's timestamp moved by the clock error the collector measured (received_at − sent_at). Every window uses it."),
            c("client_ts", Time, "The browser's own timestamp, uncorrected."),
            c("received_at", Time, "When the collector received the batch (its clock)."),
            SITE,
            c("anonymous_id", Text, "The visitor: kept by the tracker in first-party storage (per page load in cookieless mode)."),
            c("user_id", Text, "The signed-in user, once the visitor identified; null before."),
            c("session_id", Text, "The tracker's session (new after 30 minutes idle). Gold rebuilds sessions on the server: see `sessions`."),
            c("page_url", Text, "The page's URL; the tracker keeps only utm_* query parameters and the names (not values) of ad click ids such as gclid, unless configured otherwise."),
            c("page_path", Text, "The URL's path."),
            c("page_title", Text, "The document title."),
            c("referrer", Text, "The referring URL, empty when direct."),
            $( c(stringify!($column), prop_type!($kind), $about), )*
            c("props_extra", Text, "Props the contract does not name (data-* attributes and the like), as a JSON object."),
            c("screen", Text, "Screen size, WIDTHxHEIGHT."),
            c("lang", Text, "Browser language."),
            c("tz", Text, "Browser time zone."),
            c("country", Text, "ISO 3166 country from the edge (or the CDN's header); null when unknown."),
            c("colo", Text, "The Cloudflare data centre that took the request (edge only)."),
            c("asn", U32, "The client network's autonomous system number (edge only)."),
            c("ip_hash", Text, "Keyed hash of the client IP with a salt that changes daily: countable within a day, never the IP."),
            c("browser", Text, "Browser family from the user agent (Chrome, Safari, Firefox, Edge, …)."),
            c("os", Text, "Operating system family."),
            c("device_type", Text, "desktop, mobile, tablet, bot or unknown."),
            c("is_bot", Bool, "The user agent is a known crawler, HTTP library or headless browser. Gold's business tables leave these out."),
            c("bot_signature", Text, "Which bot signature matched."),
            c("utm_source", Text, "utm_source of the page URL."),
            c("utm_medium", Text, "utm_medium of the page URL."),
            c("utm_campaign", Text, "utm_campaign of the page URL."),
            c("utm_term", Text, "utm_term of the page URL."),
            c("utm_content", Text, "utm_content of the page URL."),
        ];
    };
}
clickstream_schema::with_props!(event_columns);

/// Columns only Bronze has.
const BRONZE_ONLY: &[Column] = &[
    c("sent_at", Time, "The browser's clock when it sent the batch."),
    c("tls_version", Text, "TLS version of the request (edge only)."),
    c("user_agent", Text, "The request's user agent, as sent."),
    c("raw", Text, "The event exactly as received (JSON): Silver can be rebuilt from Bronze after a rule change."),
    c("log_partition", U32, "Partition of the stream the event came from."),
    c("log_offset", U64, "Its offset in that partition."),
    c("ingested_at", Time, "When the aggregator wrote it."),
];

const SILVER: TableDoc = TableDoc {
    name: "silver_events",
    path: "silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet",
    row: "one event, once: later copies of an event id are dropped",
    about: "Valid, enriched events, deduplicated by site and event id, partitioned by event time. Bots are kept and flagged.",
};

const HOUR: Column = c("hour", I64, "Partition: the UTC hour (0–23), from the folder name.");

/// Every table, in the order the page (and `query`) lists them, with its
/// columns in the order they are stored (partition columns last).
pub fn tables() -> Vec<(TableDoc, Vec<&'static Column>)> {
    let events: Vec<&Column> = EVENT_COLUMNS.iter().collect();
    let mut silver = events.clone();
    silver.extend([&DT_EVENT, &HOUR]);
    let mut bronze: Vec<&Column> = events;
    bronze.extend(BRONZE_ONLY.iter());
    bronze.extend([&DT_ARRIVAL, &HOUR_ARRIVAL]);
    let mut all = vec![(SILVER, silver), (BRONZE, bronze), (REJECTS, REJECT_COLUMNS.iter().collect())];
    all.extend(GOLD.iter().map(|(doc, columns)| (copy(doc), columns.iter().collect())));
    all
}

const DT_EVENT: Column = c("dt", Date, "Partition: the UTC day of event_ts (from the folder name).");
const DT_ARRIVAL: Column = c("dt", Date, "Partition: the UTC day of arrival (from the folder name).");
const HOUR_ARRIVAL: Column = c("hour", I64, "Partition: the UTC hour of arrival (0–23), from the folder name.");

const BRONZE: TableDoc = TableDoc {
    name: "bronze_events",
    path: "bronze/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet",
    row: "one accepted event as it arrived, retries included",
    about: "Append-only, partitioned by arrival time: every Silver column, plus what the stream and the request said.",
};

const REJECTS: TableDoc = TableDoc {
    name: "rejects",
    path: "rejects/dt=YYYY-MM-DD/part-*.parquet",
    row: "one refused event (a bad row)",
    about: "Events that failed validation inside an otherwise valid batch, kept with the rule they broke. Nothing is dropped silently.",
};

const REJECT_COLUMNS: &[Column] = &[
    c("received_at", Time, "When the collector received it."),
    SITE,
    c(
        "reason",
        Text,
        "The rule it broke, one code per rule (missing_event_id, invalid_timestamp, too_late, …; README lists them).",
    ),
    c("detail", Text, "Which field, and what was wrong with it."),
    c("payload", Text, "The event's JSON exactly as sent."),
    c("event_index", U32, "Its position in the batch."),
    c("event_id", Text, "Its event id, if it had a readable one."),
    c("anonymous_id", Text, "Its visitor, if readable."),
    c("source", Text, "Where it was judged: edge (the Worker) or backend."),
    c("log_partition", U32, "Stream partition of the bad row."),
    c("log_offset", U64, "Its offset there."),
    c("dt", Date, "Partition: the UTC day of arrival (from the folder name)."),
];

const fn gold(name: &'static str, row: &'static str, about: &'static str) -> TableDoc {
    TableDoc { name, path: "", row, about }
}

fn copy(doc: &TableDoc) -> TableDoc {
    TableDoc { name: doc.name, path: doc.path, row: doc.row, about: doc.about }
}

const WINDOW_START: Column = c("window_start", Time, "Start of the window (inclusive).");
const WINDOW_END: Column = c("window_end", Time, "End of the window (exclusive).");
const HOUR_START: Column = c("hour_start", Time, "The hour (UTC).");
const PRODUCT: Column = c("product_id", Text, "The product.");

/// The Gold tables, all built from Silver without bots unless they are
/// about bots, each file one hour: `gold/<table>/dt=YYYY-MM-DD/part-HH.parquet`.
const GOLD: &[(TableDoc, &[Column])] = &[
    (
        gold("traffic_1m", "one site and minute with human traffic", "What the site is doing, minute by minute."),
        &[
            SITE,
            WINDOW_START,
            WINDOW_END,
            c("events", U32, "Human events in the minute."),
            c("page_views", U32, "Of those, page views."),
            c("active_users", U32, "Distinct visitors."),
            c("sessions", U32, "Server-side sessions with an event in the minute."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold("top_pages_1h", "one site, hour and page", "Which pages are read."),
        &[
            SITE,
            HOUR_START,
            c("page_path", Text, "The page."),
            c("views", U32, "Page views."),
            c("unique_visitors", U32, "Distinct visitors who viewed it in the hour."),
            c("rank", U32, "1 for the site's most viewed page of the hour; ties share the lower rank."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "page_transitions_1h",
            "one site, hour, page and the page viewed right after it",
            "Which page follows which: consecutive human page views of a tracker session within the hour (a step \
             across the hour's end is left out).",
        ),
        &[
            SITE,
            HOUR_START,
            c("page_path", Text, "The page viewed first."),
            c("next_page", Text, "The page viewed right after it, in the same session and hour."),
            c("transitions", U32, "How many times."),
            c("sessions", U32, "In how many sessions (the tracker's session_id)."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold("revenue_5m", "one site, 5-minute window and product with purchases", "Money, as it comes in."),
        &[
            SITE,
            WINDOW_START,
            WINDOW_END,
            PRODUCT,
            c("revenue", F64, "Sum of the purchase lines' revenue, in the site's currency (not converted)."),
            c("orders", U32, "Distinct orders with the product."),
            c("units", I64, "Units sold."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "conversion_10m",
            "one site and 10-minute window with human events",
            "The seeds' conversion window: of the sessions active in ten minutes, how many bought. A session \
             (the tracker's session_id) counts in every window it has an event in.",
        ),
        &[
            SITE,
            WINDOW_START,
            WINDOW_END,
            c("sessions", U32, "Distinct sessions with an event in the window."),
            c("cart_sessions", U32, "Of them, those with an add_to_cart in the window."),
            c("purchase_sessions", U32, "Of them, those with a purchase in the window."),
            c("purchases", U32, "Distinct orders purchased in the window."),
            c("conversion_rate", F64, "purchase_sessions / sessions."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "sessions",
            "one server-side session: a visitor's events with no gap over 30 minutes, on event time, across hours and days",
            "Visits. dt is the day the session started.",
        ),
        &[
            SITE,
            c("session_id", Text, "anonymous_id:session_start in ms; stable unless an earlier event of the session arrives late."),
            c("anonymous_id", Text, "The visitor."),
            c("user_id", Text, "The last user id the visitor identified as in the session."),
            c("session_start", Time, "Its first event's time."),
            c("session_end", Time, "Its last event's time."),
            c("duration_ms", I64, "session_end − session_start (0 for a single event)."),
            c("engaged_ms", I64, "How long its pages were visible: its page_leave reports' engaged_ms, summed (0 without any)."),
            c("events", U32, "Events in the session."),
            c("page_views", U32, "Page views in it."),
            c("entry_page", Text, "Path of its first page view."),
            c("exit_page", Text, "Path of its last page view."),
            c("bounced", Bool, "Exactly one page view."),
            c("converted", Bool, "At least one purchase."),
            c("revenue", F64, "Sum of its purchase lines (0 without any)."),
            c("utm_source", Text, "UTM source of its landing event."),
            c("utm_medium", Text, "UTM medium of its landing event."),
            c("utm_campaign", Text, "UTM campaign of its landing event."),
            c(
                "referrer_domain",
                Text,
                "Host of its first event's referrer without www.; null when direct or from the site itself.",
            ),
            c(
                "source",
                Text,
                "utm_source, else the referrer list's name (Google, Facebook, Gmail, ...), else a click id's network, \
                 else referrer_domain, else (direct).",
            ),
            c(
                "medium",
                Text,
                "utm_medium, else cpc for a click id, else organic / social / email / display / referral, else (none).",
            ),
            c(
                "channel",
                Text,
                "Default channel grouping: Direct, Organic Search, Paid Search, Organic Social, Paid Social, Email, \
                 Referral, Affiliates, Display or Other.",
            ),
            c("country", Text, "Country of its first event."),
            c("device_type", Text, "Device type of its first event."),
            c("browser", Text, "Browser of its first event."),
            c("funnel_step", U32, "How far it got in order: 0 none, 1 product view, 2 add to cart, 3 checkout, 4 purchase; each step counts only after the one before."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold("funnel_1h", "one site and hour of session start", "The purchase funnel, from `sessions.funnel_step`."),
        &[
            SITE,
            c("hour_start", Time, "The hour the sessions started in (UTC)."),
            c("sessions", U32, "Sessions that started in the hour."),
            c("product_views", U32, "Of those, sessions that viewed a product."),
            c("add_to_carts", U32, "…then added to the cart."),
            c("checkouts", U32, "…then began a checkout."),
            c("purchases", U32, "…then bought."),
            c("view_rate", F64, "product_views / sessions (null when 0 / 0; so are the other rates)."),
            c("cart_rate", F64, "add_to_carts / product_views."),
            c("checkout_rate", F64, "checkouts / add_to_carts."),
            c("purchase_rate", F64, "purchases / checkouts."),
            c("conversion_rate", F64, "purchases / sessions."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "entry_pages_1h",
            "one site, hour of session start and entry page",
            "Where sessions start (sessions.entry_page), with their bounces and purchases. Sessions without a \
             page view are left out.",
        ),
        &[
            SITE,
            c("hour_start", Time, "The hour the sessions started in (UTC)."),
            c("page_path", Text, "The entry page: the session's first page view."),
            c("sessions", U32, "Sessions that started on it."),
            c("bounces", U32, "Of them, sessions with a single page view."),
            c("bounce_rate", F64, "bounces / sessions."),
            c("converted", U32, "Of them, sessions with a purchase."),
            c("revenue", F64, "Their revenue."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "exit_pages_1h",
            "one site, hour of session start and exit page",
            "Where sessions end (sessions.exit_page). An exit rate divides exits by the page's views \
             (top_pages_1h) over the same hours.",
        ),
        &[
            SITE,
            c("hour_start", Time, "The hour the sessions started in (UTC)."),
            c("page_path", Text, "The exit page: the session's last page view."),
            c("exits", U32, "Sessions that ended on it."),
            c("bounces", U32, "Of them, sessions with a single page view."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "sources_1h",
            "one site, hour of session start, source, medium and channel",
            "Where sessions come from (sessions.source, medium, channel), with their visitors, bounces, \
             conversions and revenue. Visitors are distinct within the hour: count them from sessions over \
             longer ranges.",
        ),
        &[
            SITE,
            c("hour_start", Time, "The hour the sessions started in (UTC)."),
            c("source", Text, "As in sessions.source."),
            c("medium", Text, "As in sessions.medium."),
            c("channel", Text, "As in sessions.channel."),
            c("sessions", U32, "Sessions that started in the hour from this source."),
            c("visitors", U32, "Distinct visitors (anonymous_id) of those sessions."),
            c("bounces", U32, "Of them, sessions with a single page view."),
            c("bounce_rate", F64, "bounces / sessions."),
            c("conversions", U32, "Of them, sessions with a purchase."),
            c("conversion_rate", F64, "conversions / sessions."),
            c("revenue", F64, "Their revenue."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold("product_performance_1h", "one site, hour and product with a view, cart add or purchase", "How each product sells."),
        &[
            SITE,
            HOUR_START,
            PRODUCT,
            c("views", U32, "Product page views."),
            c("add_to_carts", U32, "Cart adds."),
            c("units_added", I64, "Units added to carts."),
            c("purchases", U32, "Purchase lines."),
            c("units_sold", I64, "Units sold."),
            c("revenue", F64, "Revenue of those lines."),
            c("view_to_cart_rate", F64, "add_to_carts / views (null when 0 / 0; so are the other rates)."),
            c("cart_to_purchase_rate", F64, "purchases / add_to_carts."),
            c("cart_abandonment_rate", F64, "1 − cart_to_purchase_rate, at least 0."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "goals_1h",
            "one site, hour and goal completed in it",
            "The goals of the config file ([[goals]]): a page path pattern, a custom event (with prop values), or \
             an order of at least some revenue. Human events only; a session is the tracker's session_id.",
        ),
        &[
            SITE,
            HOUR_START,
            c("goal", Text, "The goal's name."),
            c("completions", U32, "Matching page views or custom events, or orders reaching the revenue."),
            c("converting_sessions", U32, "Sessions with a completion."),
            c("sessions", U32, "All sessions of the site with an event in the hour."),
            c("conversion_rate", F64, "converting_sessions / sessions."),
            c("revenue", F64, "Purchase revenue of the converting sessions in the hour (0 if none)."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "custom_events_1h",
            "one site, hour and custom event name, and one more per value of each chosen prop",
            "Custom events (clickstream.track) by name, and by the values of the props the config file lists in \
             custom_event_props. Human events only.",
        ),
        &[
            SITE,
            HOUR_START,
            c("event_name", Text, "The custom event's name."),
            c("prop", Text, "Null on the name's total row; else a prop of custom_event_props."),
            c("value", Text, "Null on the total row; else one value of that prop (numbers and booleans as JSON text)."),
            c("events", U32, "Events."),
            c("visitors", U32, "Distinct visitors (anonymous_id)."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "link_clicks_1h",
            "one site, hour, kind and link target clicked",
            "Outbound links and file downloads, from the tracker's click events (human ones): a click on a link \
             whose path ends in a document, archive, installer or media extension is a download (docs/analysts.md \
             lists them); else a link to another host than the page's (www. aside) is outbound.",
        ),
        &[
            SITE,
            HOUR_START,
            c("kind", Text, "outbound or download."),
            c("url", Text, "The link's target as tracked (its query cleaned like a page URL's)."),
            c("clicks", U32, "Clicks on it."),
            c("visitors", U32, "Distinct visitors (anonymous_id) in the hour."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "engagement_1h",
            "one site, hour and page with page_leave reports",
            "How long pages are read and how far down, from the tracker's page_leave reports (human ones): it \
             sends one each time a page is hidden or left, with the time it was visible since the page view or \
             the report before, and the deepest point reached so far.",
        ),
        &[
            SITE,
            HOUR_START,
            c("page_path", Text, "The page."),
            c("page_views", U32, "Its page views in the hour."),
            c("leaves", U32, "Its page_leave reports in the hour."),
            c("visitors", U32, "Distinct visitors (anonymous_id) among them."),
            c("engaged_ms", I64, "The reports' engaged time, summed (ms)."),
            c("avg_engaged_ms", F64, "Engaged time per page view: engaged_ms / page_views (null without a view in the hour)."),
            c("avg_scroll_depth", F64, "The reports' scroll depth, averaged (percent of the page's height)."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold(
            "bot_anomalies",
            "one visitor and minute with more than 50 events",
            "Visitors behaving like bots whatever their user agent says; every business table leaves all their events out.",
        ),
        &[
            SITE,
            c("anonymous_id", Text, "The visitor."),
            WINDOW_START,
            WINDOW_END,
            c("events", U32, "Its events in the minute, bots' included."),
            IS_FINAL,
            DT,
        ],
    ),
    (
        gold("dim_users", "one site and visitor", "Who the visitors are, over all their sessions. dt is the day they were first seen."),
        &[
            SITE,
            c("anonymous_id", Text, "The visitor."),
            c("user_id", Text, "The last user id it identified as."),
            c("first_seen", Time, "Start of its first session."),
            c("last_seen", Time, "End of its last session."),
            c("sessions", U32, "Its sessions."),
            c("lifetime_revenue", F64, "Revenue over all of them."),
            c("purchases_sessions", U32, "Sessions with a purchase."),
            c("first_utm_source", Text, "UTM source of its first session."),
            c("country", Text, "Country of its first session."),
            c("dt", Date, "Partition: the UTC day of first_seen (from the folder name)."),
        ],
    ),
    (
        gold(
            "dim_pages",
            "one site and page path seen in a page view",
            "The pages of the star schema: join Silver's page_path to it. Bots' page views count too, so every \
             page view in Silver finds its page. dt is the day the page was first seen.",
        ),
        &[
            SITE,
            c("page_path", Text, "The page."),
            c("title", Text, "The title of its latest page view that had one (null if none had)."),
            c("title_at", Time, "When that title was seen."),
            c("first_seen", Time, "Its first page view."),
            c("last_seen", Time, "Its last page view."),
            c("dt", Date, "Partition: the UTC day of first_seen (from the folder name)."),
        ],
    ),
    (
        gold(
            "dim_products",
            "one site and product any event names",
            "The products of the star schema: join Silver's product_id to it. Each attribute is the latest sent \
             on its own, so a purchase line without a name keeps the name a product view sent. Bots' events \
             count too. dt is the day the product was first seen.",
        ),
        &[
            SITE,
            PRODUCT,
            c("name", Text, "The latest product name sent: the product_name (or productName) prop, which reaches Silver in props_extra."),
            c("name_at", Time, "When that name was sent."),
            c("category", Text, "The latest category sent."),
            c("category_at", Time, "When that category was sent."),
            c("price", F64, "The latest unit price sent."),
            c("currency", Text, "The currency of that price."),
            c("price_at", Time, "When that price was sent."),
            c("first_seen", Time, "The first event naming the product."),
            c("last_seen", Time, "The last event naming it."),
            c("dt", Date, "Partition: the UTC day of first_seen (from the folder name)."),
        ],
    ),
    (
        gold(
            "identity_map",
            "one site and anonymous_id that ever sent a user_id",
            "Which user each browser identified as: join Silver's anonymous_id to it to count a person who \
             signed in on several devices once (coalesce(user_id, anonymous_id)). Bots' events count too. dt is \
             the day of first_seen.",
        ),
        &[
            SITE,
            c("anonymous_id", Text, "The browser's id."),
            c("user_id", Text, "The user of its latest identified event: a shared browser maps to whoever signed in last."),
            c("first_seen", Time, "Its first event with a user_id."),
            c("last_seen", Time, "Its last event with a user_id."),
            c("dt", Date, "Partition: the UTC day of first_seen (from the folder name)."),
        ],
    ),
    (
        gold(
            "dim_date",
            "one UTC day, from Silver's first event day to its last",
            "The calendar of the star schema: join Silver's dt (or event_ts cast to a date) to date. Days without \
             events are listed too, so a join from the calendar shows them as zero.",
        ),
        &[
            c("date", Date, "The day (UTC)."),
            c("day_start", Time, "Its first millisecond: the day event_ts truncates to."),
            c("year", I32, "The calendar year."),
            c("quarter", I32, "1–4."),
            c("month", I32, "1–12."),
            c("month_name", Text, "January … December."),
            c("month_start", Date, "The first day of the month."),
            c("iso_year", I32, "The ISO 8601 week-numbering year (that of the week's Thursday)."),
            c("iso_week", I32, "The ISO 8601 week, 1–53."),
            c("week_start", Date, "The Monday the week starts on."),
            c("weekday", I32, "1 = Monday … 7 = Sunday."),
            c("weekday_name", Text, "Monday … Sunday."),
            c("is_weekend", Bool, "Saturday or Sunday."),
            c("day_of_month", I32, "1–31."),
            c("day_of_year", I32, "1–366."),
            c("dt", Date, "Partition: the day (from the folder name)."),
        ],
    ),
    (
        gold(
            "retention_weekly",
            "one site, cohort week and week after it that any of the cohort came back in",
            "Of the people first active in a week (the cohort), how many were active in each week after. A person \
             is a signed-in user across every browser identity_map ties to them, else a browser: signing in moves \
             a browser's whole history to its user. Active means a human session started that week; weeks start \
             on Monday in the site's time zone (time_zone, site_time_zones). Weeks nobody came back in have no \
             row. dt is the day of cohort_start.",
        ),
        &[
            SITE,
            c("cohort_week", Date, "The Monday of the week the cohort's people were first active in (the site's zone)."),
            c("cohort_start", Time, "That day as a timestamp (its midnight, wall clock)."),
            c("week_offset", I32, "Weeks after the cohort's: 0 is its own week."),
            c("cohort_size", U32, "People in the cohort."),
            c("active", U32, "Of them, people active in that week."),
            c("retention_rate", F64, "active / cohort_size."),
            c("dt", Date, "Partition: the day of cohort_start (from the folder name)."),
        ],
    ),
    (
        gold(
            "retention_daily",
            "one site, cohort day and day after it that any of the cohort came back on",
            "retention_weekly by days: of the people first active on a day (in the site's time zone), how many \
             were active on each day after.",
        ),
        &[
            SITE,
            c("cohort_day", Date, "The day the cohort's people were first active on (the site's zone)."),
            c("cohort_start", Time, "That day as a timestamp (its midnight, wall clock)."),
            c("day_offset", I32, "Days after the cohort's: 0 is its own day."),
            c("cohort_size", U32, "People in the cohort."),
            c("active", U32, "Of them, people active on that day."),
            c("retention_rate", F64, "active / cohort_size."),
            c("dt", Date, "Partition: the day of cohort_start (from the folder name)."),
        ],
    ),
];

/// The tables as Markdown, for `docs/analysts.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    for (doc, columns) in tables() {
        let path = if doc.path.is_empty() {
            format!("gold/{}/dt=YYYY-MM-DD/part-HH.parquet", doc.name)
        } else {
            doc.path.to_string()
        };
        out.push_str(&format!("### `{}`\n\n{} One row: {}.\n\n`DATA_DIR/{path}`\n\n", doc.name, doc.about, doc.row));
        out.push_str("| column | type | meaning |\n|---|---|---|\n");
        for column in columns {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                column.name,
                column.kind.name(),
                column.about.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use polars::prelude::*;

    use super::*;
    use crate::aggregate::bronze::{bronze_frame, LogEvent};
    use crate::aggregate::rejects::rejects_frame;
    use crate::aggregate::silver::{silver, IS_NEW};
    use crate::gold::fixture::{at, ev, with_goals, DataDir};
    use crate::storage::scan::scan_table;
    use crate::storage::GoldTable;

    fn listed(name: &str) -> Vec<(String, DataType)> {
        let (_, columns) = tables().into_iter().find(|(d, _)| d.name == name).unwrap();
        columns.iter().map(|c| (c.name.to_string(), c.kind.polars())).collect()
    }

    fn schema_of(schema: &Schema) -> Vec<(String, DataType)> {
        schema.iter().map(|(n, d)| (n.to_string(), d.clone())).collect()
    }

    fn without_partitions(mut columns: Vec<(String, DataType)>) -> Vec<(String, DataType)> {
        columns.retain(|(n, _)| n != "dt" && n != "hour");
        columns
    }

    #[test]
    fn the_catalogue_is_what_the_pipeline_writes() {
        // Gold, as the aggregator's refresh writes it, read back with its partition column.
        let dir = DataDir::new("catalog");
        let mut events = vec![
            ev("a1", "page_view", at(9, 10), "a"),
            ev("a2", "purchase", at(9, 12), "a").product("p-1").bought("o-1", 1, 9.0).user("u-1"),
            ev("a3", "page_view", at(9, 13), "a").path("/thank-you"),
            ev("a4", "custom", at(9, 14), "a").custom("newsletter_signup").prop("placement", serde_json::json!("home")),
            ev("a5", "click", at(9, 15), "a").href("https://elsewhere.example/"),
            ev("a6", "page_leave", at(9, 16), "a").path("/thank-you").read(30_000, 70),
        ];
        events.extend((0..60).map(|i| ev(format!("b{i}"), "page_view", at(9, 30) + i * 900, "bot")));
        dir.publish_with(&events, &with_goals());
        for table in GoldTable::ALL {
            let written = scan_table(&dir.0, table).unwrap().collect_schema().unwrap();
            assert_eq!(schema_of(&written), listed(table.name()), "{}", table.name());
        }

        // Bronze and Silver, from the collect core's events.
        let body = serde_json::json!({"v": 1, "site_id": "s", "sent_at": 1, "events": [
            {"event_id": "e", "event_type": "page_view", "ts": 1_795_305_600_000i64, "anonymous_id": "a", "session_id": "s", "page": {"path": "/"}}]})
        .to_string();
        let meta = clickstream_schema::RequestMeta { received_at: 1_795_305_600_000, ..Default::default() };
        let mut config = edge_worker::CollectConfig::new("k", "backend");
        config.limits.horizon_ms = i64::MAX / 4;
        let collected = edge_worker::collect(body.as_bytes(), &meta, &config).unwrap();
        let rows: Vec<LogEvent> =
            collected.accepted.into_iter().map(|event| LogEvent { partition: 0, offset: 0, event }).collect();
        let bronze = bronze_frame(&rows, 0).unwrap();
        // Bronze is documented as Silver's columns and its own: the same set.
        let sorted = |mut v: Vec<(String, DataType)>| {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(sorted(schema_of(bronze.schema())), sorted(without_partitions(listed("bronze_events"))));
        let silver_schema = silver(bronze.lazy().with_column(lit(true).alias(IS_NEW))).collect_schema().unwrap();
        assert_eq!(schema_of(&silver_schema), without_partitions(listed("silver_events")));
        assert_eq!(listed("silver_events").iter().filter(|(n, _)| n == "dt" || n == "hour").count(), 2);

        let rejects = rejects_frame(&[]).unwrap();
        assert_eq!(schema_of(rejects.schema()), without_partitions(listed("rejects")));

        let names: Vec<_> = tables().iter().map(|(d, _)| d.name).collect();
        assert_eq!(names.len(), 3 + GoldTable::ALL.len(), "every table `query` knows is documented");
        assert_eq!(names, crate::query::table_names(), "in the order `query` lists them");
        let dupes: BTreeMap<_, usize> = tables()
            .iter()
            .flat_map(|(d, cs)| cs.iter().map(move |c| (d.name, c.name)))
            .fold(BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
        assert!(dupes.values().all(|n| *n == 1), "no column twice");
    }

    #[test]
    fn docs_analysts_md_shows_the_catalogue() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/analysts.md");
        let page = std::fs::read_to_string(&path).unwrap_or_default();
        let (start, end) = ("<!-- tables: generated from backend/src/catalog.rs -->\n", "<!-- end of tables -->");
        let generated = markdown();
        let current = page.find(start).and_then(|a| page[a..].find(end).map(|b| &page[a + start.len()..a + b]));
        if current != Some(generated.as_str()) {
            if std::env::var_os("CLICKSTREAM_UPDATE_DOCS").is_some() {
                let (a, b) = (page.find(start).unwrap(), page.find(end).unwrap());
                std::fs::write(&path, format!("{}{start}{generated}{}", &page[..a], &page[b..])).unwrap();
            } else {
                panic!("docs/analysts.md does not show backend/src/catalog.rs; run `CLICKSTREAM_UPDATE_DOCS=1 cargo test -p clickstream-backend --lib catalog` to rewrite it");
            }
        }
    }
}
