use clickstream_schema::{parse_batch, BatchError, Limits};

fn parse(body: &str) -> Result<clickstream_schema::ParsedBatch<'_>, BatchError> {
    parse_batch(body.as_bytes(), &Limits::default())
}

#[test]
fn a_valid_envelope_keeps_events_raw() {
    let b = parse(r#"{"v":1,"site_id":"shop-1","sent_at":1732262400123,"events":[{"a":1},2]}"#).unwrap();
    assert_eq!(b.site_id, "shop-1");
    assert_eq!(b.sent_at, Some(1_732_262_400_123));
    assert_eq!(b.events.len(), 2);
    // sent_at is optional.
    assert_eq!(parse(r#"{"v":1,"site_id":"s","events":[]}"#).unwrap().sent_at, None);
}

#[test]
fn body_over_the_limit_is_413() {
    let limits = Limits { max_body_bytes: 10, ..Limits::default() };
    let err = parse_batch(br#"{"v":1,"site_id":"shop-1","events":[]}"#, &limits).unwrap_err();
    assert_eq!(err, BatchError::BodyTooLarge { limit: 10 });
    assert_eq!((err.code(), err.http_status()), ("body_too_large", 413));
}

#[test]
fn not_json_is_malformed_json() {
    for body in ["", "{", "not json", "{\"v\":1,}"] {
        let err = parse(body).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("malformed_json", 400), "{body:?}");
    }
}

#[test]
fn wrong_envelopes_are_invalid_envelope() {
    for body in [
        "[]",
        "42",
        r#"{"site_id":"s","events":[]}"#,
        r#"{"v":1,"events":[]}"#,
        r#"{"v":1,"site_id":"","events":[]}"#,
        r#"{"v":1,"site_id":7,"events":[]}"#,
        r#"{"v":1,"site_id":"s"}"#,
        r#"{"v":1,"site_id":"s","events":{}}"#,
        r#"{"v":1,"site_id":"s","sent_at":"yesterday","events":[]}"#,
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.code(), "invalid_envelope", "{body}");
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn unknown_versions_are_unsupported() {
    for v in ["2", "0", "\"1\"", "null"] {
        let err = parse(&format!(r#"{{"v":{v},"site_id":"s","events":[]}}"#)).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("unsupported_version", 400), "v={v}");
        assert!(err.body()["message"].as_str().unwrap().contains("v1"));
    }
}

#[test]
fn too_many_events() {
    let limits = Limits { max_events: 2, ..Limits::default() };
    let err = parse_batch(br#"{"v":1,"site_id":"s","events":[1,2,3]}"#, &limits).unwrap_err();
    assert_eq!(err, BatchError::TooManyEvents { limit: 2, got: 3 });
    assert_eq!(err.http_status(), 400);
}
