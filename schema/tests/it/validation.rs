//! One test per reason code, each with a valid neighbour that passes.

use clickstream_schema::{validate_event, EventType, Limits, RejectReason};
use serde_json::{json, Value};

const NOW: i64 = 1_732_262_400_000;

fn base(event_type: &str) -> Value {
    let props = match event_type {
        "click" => json!({"tag": "a", "text": "Shoes", "href": "/c/shoes"}),
        "search" => json!({"query": "red shoes"}),
        "add_to_cart" | "remove_from_cart" => {
            json!({"product_id": "p-1", "price": 10.0, "quantity": 1, "currency": "EUR"})
        }
        "purchase" => {
            json!({"order_id": "o-1", "product_id": "p-1", "price": 10.0, "quantity": 2, "revenue": 20.0, "currency": "EUR"})
        }
        "custom" => json!({"name": "newsletter_signup"}),
        "page_leave" => json!({"engaged_ms": 42_000, "scroll_depth": 80}),
        _ => json!({}),
    };
    let mut event = json!({
        "event_id": "e-1", "event_type": event_type, "ts": NOW - 1000,
        "anonymous_id": "a-1", "user_id": null, "session_id": "s-1",
        "page": {"url": "https://shop.example/", "path": "/", "referrer": "", "title": "Home"},
        "props": props,
        "context": {"screen": "1920x1080", "lang": "en-US", "tz": "UTC"}
    });
    if event_type == "identify" {
        event["user_id"] = json!("u-1");
    }
    event
}

fn check(event: &Value) -> Result<clickstream_schema::Event, RejectReason> {
    validate_event(&event.to_string(), Some(NOW), NOW, &Limits::default()).map_err(|r| r.reason)
}

fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    *event.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
    event
}

fn with_prop(mut event: Value, key: &str, value: Value) -> Value {
    event["props"].as_object_mut().unwrap().insert(key.to_string(), value);
    event
}

fn without(mut event: Value, parent: &str, key: &str) -> Value {
    event.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
    event
}

#[test]
fn every_event_type_has_a_valid_example() {
    for t in EventType::ALL {
        let e = check(&base(t.as_str())).unwrap_or_else(|r| panic!("{t:?}: {r}"));
        assert_eq!(e.event_type, t);
    }
    let purchase = check(&base("purchase")).unwrap();
    assert_eq!(purchase.props.revenue, Some(20.0));
    assert_eq!(purchase.props.quantity, Some(2));
}

#[test]
fn reason_codes_are_unique_and_round_trip() {
    let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), RejectReason::ALL.len());
    for r in RejectReason::ALL {
        assert_eq!(RejectReason::from_code(r.code()), Some(r));
    }
}

#[test]
fn not_an_object() {
    for v in [json!("e"), json!(1), json!([]), json!(null)] {
        assert_eq!(check(&v).unwrap_err(), RejectReason::NotAnObject);
    }
}

#[test]
fn missing_event_id() {
    assert_eq!(check(&without(base("click"), "", "event_id")).unwrap_err(), RejectReason::MissingEventId);
    assert_eq!(check(&with(base("click"), "/event_id", json!(null))).unwrap_err(), RejectReason::MissingEventId);
}

#[test]
fn invalid_event_id() {
    for bad in [json!(7), json!(""), json!("has space"), json!("x".repeat(129))] {
        assert_eq!(check(&with(base("click"), "/event_id", bad)).unwrap_err(), RejectReason::InvalidEventId);
    }
    assert!(check(&with(base("click"), "/event_id", json!("x".repeat(128)))).is_ok());
}

#[test]
fn duplicate_event_id_is_a_batch_rule() {
    // Checked by the collect core, which sees the whole batch; the code exists here.
    assert_eq!(RejectReason::DuplicateEventId.code(), "duplicate_event_id");
}

#[test]
fn missing_event_type() {
    assert_eq!(check(&without(base("click"), "", "event_type")).unwrap_err(), RejectReason::MissingEventType);
}

#[test]
fn unknown_event_type() {
    assert_eq!(
        check(&with(base("click"), "/event_type", json!("teleport"))).unwrap_err(),
        RejectReason::UnknownEventType
    );
    assert_eq!(check(&with(base("click"), "/event_type", json!(3))).unwrap_err(), RejectReason::UnknownEventType);
    assert_eq!(
        check(&with(base("click"), "/event_type", json!("PAGE_VIEW"))).unwrap_err(),
        RejectReason::UnknownEventType
    );
}

#[test]
fn missing_timestamp() {
    assert_eq!(check(&without(base("click"), "", "ts")).unwrap_err(), RejectReason::MissingTimestamp);
}

#[test]
fn invalid_timestamp() {
    for bad in [json!("1732262400000"), json!(-5), json!(0), json!(1.5), json!(true)] {
        assert_eq!(
            check(&with(base("click"), "/ts", bad.clone())).unwrap_err(),
            RejectReason::InvalidTimestamp,
            "{bad}"
        );
    }
    // An integral float is a JavaScript number like any other.
    assert!(check(&with(base("click"), "/ts", json!(1.732262399e12))).is_ok());
}

#[test]
fn timestamp_in_future() {
    let limit = Limits::default().max_future_ms;
    assert!(check(&with(base("click"), "/ts", json!(NOW + limit))).is_ok());
    assert_eq!(
        check(&with(base("click"), "/ts", json!(NOW + limit + 1))).unwrap_err(),
        RejectReason::TimestampInFuture
    );
    // A client clock one day fast is corrected by sent_at, not refused.
    let e = base("click");
    let fast = with(e, "/ts", json!(NOW + 86_400_000 - 1000));
    assert!(validate_event(&fast.to_string(), Some(NOW + 86_400_000), NOW, &Limits::default()).is_ok());
}

#[test]
fn too_late() {
    let horizon = Limits::default().horizon_ms;
    assert!(check(&with(base("click"), "/ts", json!(NOW - horizon))).is_ok());
    assert_eq!(check(&with(base("click"), "/ts", json!(NOW - horizon - 1))).unwrap_err(), RejectReason::TooLate);
}

#[test]
fn missing_anonymous_id() {
    assert_eq!(check(&without(base("click"), "", "anonymous_id")).unwrap_err(), RejectReason::MissingAnonymousId);
    assert_eq!(check(&with(base("click"), "/anonymous_id", json!(""))).unwrap_err(), RejectReason::MissingAnonymousId);
}

#[test]
fn missing_session_id() {
    assert_eq!(check(&without(base("click"), "", "session_id")).unwrap_err(), RejectReason::MissingSessionId);
}

#[test]
fn invalid_field_type() {
    for (pointer, bad) in [
        ("/user_id", json!(42)),
        ("/anonymous_id", json!(42)),
        ("/page", json!("home")),
        ("/page/url", json!(1)),
        ("/props", json!([1])),
        ("/context", json!(true)),
        ("/context/tz", json!({})),
    ] {
        assert_eq!(
            check(&with(base("page_view"), pointer, bad)).unwrap_err(),
            RejectReason::InvalidFieldType,
            "{pointer}"
        );
    }
}

#[test]
fn field_too_long() {
    assert_eq!(
        check(&with(base("page_view"), "/page/url", json!("x".repeat(2049)))).unwrap_err(),
        RejectReason::FieldTooLong
    );
    assert_eq!(
        check(&with(base("page_view"), "/session_id", json!("x".repeat(129)))).unwrap_err(),
        RejectReason::FieldTooLong
    );
    assert_eq!(
        check(&with(base("search"), "/props/query", json!("q".repeat(513)))).unwrap_err(),
        RejectReason::FieldTooLong
    );
    assert_eq!(
        check(&with_prop(base("click"), "blob", json!("b".repeat(5000)))).unwrap_err(),
        RejectReason::FieldTooLong
    );
    // Multi-byte characters count as characters, not bytes.
    assert!(check(&with(base("search"), "/props/query", json!("é".repeat(512)))).is_ok());
}

#[test]
fn missing_page() {
    let e = with(base("page_view"), "/page", json!({"title": "no url"}));
    assert_eq!(check(&e).unwrap_err(), RejectReason::MissingPage);
    assert!(check(&with(base("page_view"), "/page", json!({"path": "/x"}))).is_ok());
    // Other event types may come without a page.
    assert!(check(&without(base("click"), "", "page")).is_ok());
}

#[test]
fn missing_prop() {
    for (t, prop) in [
        ("click", "tag"),
        ("search", "query"),
        ("add_to_cart", "product_id"),
        ("add_to_cart", "price"),
        ("remove_from_cart", "quantity"),
        ("remove_from_cart", "currency"),
        ("purchase", "order_id"),
        ("purchase", "revenue"),
        ("custom", "name"),
    ] {
        assert_eq!(check(&without(base(t), "/props", prop)).unwrap_err(), RejectReason::MissingProp, "{t}.{prop}");
    }
    // An empty string is as missing as an absent prop.
    assert_eq!(check(&with(base("search"), "/props/query", json!(""))).unwrap_err(), RejectReason::MissingProp);
}

#[test]
fn invalid_prop_type() {
    for (pointer, bad) in [
        ("/props/price", json!("12.50")),
        ("/props/quantity", json!(1.5)),
        ("/props/quantity", json!("1")),
        ("/props/product_id", json!(42)),
    ] {
        assert_eq!(
            check(&with(base("add_to_cart"), pointer, bad)).unwrap_err(),
            RejectReason::InvalidPropType,
            "{pointer}"
        );
    }
}

#[test]
fn invalid_prop_value() {
    for (pointer, bad) in [
        ("/props/price", json!(-1.0)),
        ("/props/quantity", json!(0)),
        ("/props/currency", json!("euro")),
        ("/props/currency", json!("eur")),
    ] {
        assert_eq!(
            check(&with(base("add_to_cart"), pointer, bad)).unwrap_err(),
            RejectReason::InvalidPropValue,
            "{pointer}"
        );
    }
    assert_eq!(
        check(&with(base("purchase"), "/props/revenue", json!(-20))).unwrap_err(),
        RejectReason::InvalidPropValue
    );
    // A page left: engaged time from 0 to a day, scroll depth a percent.
    for (pointer, bad) in [
        ("/props/engaged_ms", json!(-1)),
        ("/props/engaged_ms", json!(86_400_001)),
        ("/props/scroll_depth", json!(101)),
        ("/props/scroll_depth", json!(-5)),
    ] {
        assert_eq!(
            check(&with(base("page_leave"), pointer, bad)).unwrap_err(),
            RejectReason::InvalidPropValue,
            "{pointer}"
        );
    }
    for (pointer, fine) in
        [("/props/engaged_ms", json!(0)), ("/props/engaged_ms", json!(86_400_000)), ("/props/scroll_depth", json!(100))]
    {
        assert!(check(&with(base("page_leave"), pointer, fine)).is_ok(), "{pointer}");
    }
    assert_eq!(check(&without(base("page_leave"), "/props", "engaged_ms")).unwrap_err(), RejectReason::MissingProp);
    assert_eq!(
        check(&with(base("page_leave"), "/props/engaged_ms", json!(1.5))).unwrap_err(),
        RejectReason::InvalidPropType
    );
}

#[test]
fn missing_user_id() {
    assert_eq!(check(&with(base("identify"), "/user_id", json!(null))).unwrap_err(), RejectReason::MissingUserId);
    assert_eq!(check(&with(base("identify"), "/user_id", json!(""))).unwrap_err(), RejectReason::MissingUserId);
}

#[test]
fn unknown_props_are_kept() {
    let e = check(&with_prop(base("click"), "data-plan", json!("pro"))).unwrap();
    assert_eq!(e.props.extra.get("data-plan"), Some(&json!("pro")));
}
