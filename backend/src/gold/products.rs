//! `product_performance_1h`: which products sell, and which are left in
//! carts; `dim_products`: the products of the star schema.

use polars::prelude::*;

use super::dimension::{first_and_last_seen, latest, merge_by, seen_at, Dimension};
use super::{is_product_view, is_type, rate, window_of, GoldTable};

/// One row per site, hour and product with at least one human view, cart
/// add or purchase.
///
/// Columns:
/// - `site_id`, `hour_start` (UTC), `product_id`;
/// - `views`: product page views (u32);
/// - `add_to_carts`: cart adds (u32); `units_added`: their quantities (i64);
/// - `purchases`: purchase lines (u32); `units_sold` (i64); `revenue` (f64);
/// - `view_to_cart_rate` = add_to_carts / views;
/// - `cart_to_purchase_rate` = purchases / add_to_carts;
/// - `cart_abandonment_rate` = 1 − cart_to_purchase_rate, floored at 0
///   (f64, null when there were no cart adds).
pub fn product_performance_1h(human: LazyFrame) -> LazyFrame {
    let counted = |pred: Expr, name: &str| pred.sum().cast(DataType::UInt32).alias(name);
    let units = |pred: Expr, name: &str| col("quantity").filter(pred).sum().alias(name);
    human
        .filter(col("product_id").is_not_null())
        .filter(is_product_view().or(is_type("add_to_cart")).or(is_type("purchase")))
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("product_id")])
        .agg([
            counted(is_product_view(), "views"),
            counted(is_type("add_to_cart"), "add_to_carts"),
            units(is_type("add_to_cart"), "units_added"),
            counted(is_type("purchase"), "purchases"),
            units(is_type("purchase"), "units_sold"),
            col("revenue").filter(is_type("purchase")).sum().alias("revenue"),
        ])
        .with_columns([
            rate(col("add_to_carts"), col("views")).alias("view_to_cart_rate"),
            rate(col("purchases"), col("add_to_carts")).alias("cart_to_purchase_rate"),
        ])
        .with_column(
            when(col("cart_to_purchase_rate").is_null())
                .then(lit(NULL).cast(DataType::Float64))
                .when(col("cart_to_purchase_rate").gt(lit(1.0)))
                .then(lit(0.0))
                .otherwise(lit(1.0) - col("cart_to_purchase_rate"))
                .alias("cart_abandonment_rate"),
        )
        .sort(["site_id", "hour_start", "product_id"], SortMultipleOptions::default())
}

/// One row per site and product any event names (views, cart changes,
/// purchase lines; bots included, so every fact in Silver finds its
/// product).
///
/// Columns:
/// - `site_id`, `product_id`;
/// - `name`: the latest product name sent (the `product_name` prop, or
///   `productName`, which the contract passes through in `props_extra`);
///   `name_at`: when;
/// - `category`, `category_at`: the latest category sent, and when;
/// - `price`, `currency`, `price_at`: the latest unit price sent, its
///   currency, and when;
/// - `first_seen`, `last_seen`: the first and last event naming it.
///
/// Each attribute is the latest of its own (ties on time: the greatest
/// value), so a purchase line without a name does not erase the name a
/// product view sent.
pub fn dim_products(silver: LazyFrame) -> LazyFrame {
    merge_products(product_rows(silver))
}

pub const PRODUCTS: Dimension = Dimension {
    table: GoldTable::DimProducts,
    key: "product_id",
    input: &["site_id", "product_id", "props_extra", "category", "price", "currency", "event_ts"],
    rows: product_rows,
    merge: merge_products,
};

/// The extra props that name a product, in order of preference.
pub const PRODUCT_NAME_PROPS: [&str; 2] = ["product_name", "productName"];

/// Each event naming a product as a `dim_products` row of its own.
fn product_rows(silver: LazyFrame) -> LazyFrame {
    silver
        .filter(col("product_id").is_not_null())
        .with_column(
            col("props_extra")
                .map(|extra| product_names(&extra), |_, field| Ok(Field::new(field.name().clone(), DataType::String)))
                .alias("name"),
        )
        .select([
            col("site_id"),
            col("product_id"),
            col("name"),
            seen_at("name", "event_ts").alias("name_at"),
            col("category"),
            seen_at("category", "event_ts").alias("category_at"),
            col("price"),
            // The currency of that price, not of some other amount.
            when(col("price").is_not_null())
                .then(col("currency"))
                .otherwise(lit(NULL).cast(DataType::String))
                .alias("currency"),
            seen_at("price", "event_ts").alias("price_at"),
            col("event_ts").alias("first_seen"),
            col("event_ts").alias("last_seen"),
        ])
}

fn merge_products(rows: LazyFrame) -> LazyFrame {
    let mut aggs = latest(&["name"], "name_at");
    aggs.extend(latest(&["category"], "category_at"));
    aggs.extend(latest(&["price", "currency"], "price_at"));
    aggs.extend(first_and_last_seen());
    merge_by(rows, "product_id", aggs)
}

/// The product name of each `props_extra` (a JSON object as text): the
/// first of [`PRODUCT_NAME_PROPS`] that is a string. Decoded here rather
/// than with a JSON path expression, which would bring another Polars
/// feature into the build for one column.
pub(crate) fn product_names(extra: &Column) -> PolarsResult<Column> {
    let names: StringChunked = extra
        .str()?
        .iter()
        .map(|text| {
            let props: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text?).ok()?;
            PRODUCT_NAME_PROPS.iter().find_map(|k| props.get(*k)?.as_str().map(str::to_string))
        })
        .collect();
    Ok(names.with_name(extra.name().clone()).into_column())
}
