//! Props from what the site passes to the JS API (`addToCart({productId,
//! price})`, `track("signup", {plan: "pro"})`, a clicked element's
//! `data-*`): the contract's typed props by name, in camelCase or
//! snake_case, and everything else kept as extra props.
//!
//! Extra props are kept as JSON text rather than `serde_json::Value`s in a
//! map: the tracker only ever writes them, and the map and value code
//! would cost a tenth of its size budget.

use clickstream_schema::validate::MAX_EXTRA_PROPS_BYTES;
use clickstream_schema::Props;

use crate::json;

/// A value as the glue read it from JS.
#[derive(Clone, Debug, PartialEq)]
pub enum PropValue {
    Text(String),
    Number(f64),
    /// Anything else (booleans, objects, arrays) as the JSON text
    /// `JSON.stringify` made of it.
    Json(String),
}

impl PropValue {
    /// A string, or a number written as one (ids are sometimes numbers).
    pub fn into_text(self) -> Option<String> {
        match self {
            PropValue::Text(s) => Some(s),
            PropValue::Number(n) if n.is_finite() => {
                let mut out = String::new();
                json::number(&mut out, n);
                Some(out)
            }
            _ => None,
        }
    }
}

/// Extra props: the members of a JSON object, written as they come.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra(String);

impl Extra {
    /// Adds `name: value` unless that would take the event's extra props
    /// past the contract's limit (which would get the event rejected).
    pub fn push(&mut self, name: &str, value: &PropValue) {
        let mut member = String::new();
        json::string(&mut member, name);
        member.push(':');
        match value {
            PropValue::Text(s) => json::string(&mut member, s),
            PropValue::Number(n) => json::number(&mut member, *n),
            PropValue::Json(raw) => member.push_str(raw),
        }
        if self.0.len() + member.len() + 3 <= MAX_EXTRA_PROPS_BYTES {
            if !self.0.is_empty() {
                self.0.push(',');
            }
            self.0.push_str(&member);
        }
    }

    /// The members, without braces.
    pub fn members(&self) -> &str {
        &self.0
    }
}

/// Typed props and extra props from name/value pairs. Amounts must be
/// numbers: parsing decimal text would cost the tracker several KB.
pub fn from_pairs(pairs: Vec<(String, PropValue)>) -> (Props, Extra) {
    let mut props = Props::default();
    let mut extra = Extra::default();
    for (name, value) in pairs {
        let text = match &value {
            PropValue::Text(s) => Some(s.clone()),
            PropValue::Number(n) if n.fract() == 0.0 => {
                let mut id = String::new();
                json::int(&mut id, *n as i64);
                Some(id)
            }
            _ => None,
        };
        let number = match value {
            PropValue::Number(n) => Some(n),
            _ => None,
        };
        match name.as_str() {
            "productId" | "product_id" => props.product_id = text,
            "category" => props.category = text,
            "price" => props.price = number,
            "quantity" => props.quantity = number.map(|q| q.round() as i64),
            "currency" => props.currency = text,
            "revenue" => props.revenue = number,
            "orderId" | "order_id" => props.order_id = text,
            "query" => props.query = text,
            "name" => props.name = text,
            "tag" => props.tag = text,
            "text" => props.text = text,
            "href" => props.href = text,
            _ => extra.push(&name, &value),
        }
    }
    (props, extra)
}

/// A cart line: one of the item by default, in the site's currency by default.
pub fn cart_line(mut props: Props, currency: &str) -> Props {
    props.quantity.get_or_insert(1);
    props.currency.get_or_insert_with(|| currency.to_string());
    props
}

/// One purchase event's props: an order line (the contract's shape), with
/// its revenue, price × quantity, rounded to cents, unless given.
pub fn purchase_line(line: Props, currency: &str) -> Props {
    let mut line = cart_line(line, currency);
    if line.revenue.is_none() {
        let revenue = line.price.unwrap_or(0.0) * line.quantity.unwrap_or(1) as f64;
        line.revenue = Some((revenue * 100.0).round() / 100.0);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use PropValue::*;

    fn pairs(items: &[(&str, PropValue)]) -> Vec<(String, PropValue)> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    crate::both! {
        fn typed_props_by_either_spelling_and_the_rest_as_extra() {
            let (props, extra) = from_pairs(pairs(&[
                ("productId", Text("p-1".into())),
                ("price", Number(59.9)),
                ("quantity", Number(2.0)),
                ("plan", Text("pro".into())),
                ("beta", Json("true".into())),
                ("seats", Number(3.0)),
            ]));
            assert_eq!(props.product_id.as_deref(), Some("p-1"));
            assert_eq!(props.price, Some(59.9));
            assert_eq!(props.quantity, Some(2));
            assert_eq!(extra.members(), r#""plan":"pro","beta":true,"seats":3"#);
            assert_eq!(from_pairs(pairs(&[("product_id", Number(7.0))])).0.product_id.as_deref(), Some("7"));
            assert_eq!(from_pairs(pairs(&[("price", Text("59.90".into()))])).0.price, None, "amounts are numbers");
        }

        fn extra_props_stay_within_the_contract_limit() {
            let many: Vec<_> = (0..100).map(|i| (format!("k{i}"), Text("v".repeat(300)))).collect();
            let (_, extra) = from_pairs(many);
            assert!(extra.members().len() + 2 <= MAX_EXTRA_PROPS_BYTES, "{}", extra.members().len());
            assert!(!extra.members().is_empty());
        }

        fn a_cart_line_defaults_to_one_item_in_the_site_currency() {
            let line = cart_line(from_pairs(pairs(&[("productId", Text("p-1".into())), ("price", Number(10.0))])).0, "EUR");
            assert_eq!((line.quantity, line.currency.as_deref()), (Some(1), Some("EUR")));
            let line = cart_line(from_pairs(pairs(&[("quantity", Number(3.0)), ("currency", Text("USD".into()))])).0, "EUR");
            assert_eq!((line.quantity, line.currency.as_deref()), (Some(3), Some("USD")));
        }

        fn an_order_line_has_its_revenue() {
            let line = |items: &[(&str, PropValue)]| purchase_line(from_pairs(pairs(items)).0, "EUR");
            let first = line(&[("orderId", Text("o-9".into())), ("price", Number(19.99)), ("quantity", Number(3.0))]);
            assert_eq!((first.revenue, first.currency.as_deref()), (Some(59.97), Some("EUR")));
            assert_eq!(line(&[("price", Number(5.0))]).revenue, Some(5.0));
            assert_eq!(line(&[("price", Number(5.0)), ("revenue", Number(4.5))]).revenue, Some(4.5), "a given revenue (a discount) stays");
        }
    }
}
