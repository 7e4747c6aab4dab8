//! Wire format v1: what the tracker sends in `POST /v1/batch`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only wire version this contract accepts.
pub const WIRE_VERSION: i64 = 1;

/// A batch as the tracker sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub v: i64,
    pub site_id: String,
    /// Client clock when the batch was sent (ms since the Unix epoch); the
    /// edge compares it with its own clock to correct event times for skew.
    pub sent_at: i64,
    pub events: Vec<Event>,
}

/// The kinds of event the contract knows. Each has its own required props
/// (see [`crate::validate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A page view; a product view when props carry `product_id`.
    PageView,
    /// A click on a link, button or `data-track` element.
    Click,
    /// A site search (`props.query`).
    Search,
    AddToCart,
    RemoveFromCart,
    BeginCheckout,
    /// One product line of an order.
    Purchase,
    /// The visitor logged in: `user_id` is set.
    Identify,
    /// Anything else the site tracks (`props.name`).
    Custom,
    /// The visitor hid or left the page: `props.engaged_ms`, the time it
    /// was visible since the page view or the last `page_leave` of it, and
    /// `props.scroll_depth`, the deepest point reached (percent).
    PageLeave,
}

impl EventType {
    /// In the binary record's order (an event type is its index): new
    /// types are appended.
    pub const ALL: [EventType; 10] = [
        EventType::PageView,
        EventType::Click,
        EventType::Search,
        EventType::AddToCart,
        EventType::RemoveFromCart,
        EventType::BeginCheckout,
        EventType::Purchase,
        EventType::Identify,
        EventType::Custom,
        EventType::PageLeave,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PageView => "page_view",
            EventType::Click => "click",
            EventType::Search => "search",
            EventType::AddToCart => "add_to_cart",
            EventType::RemoveFromCart => "remove_from_cart",
            EventType::BeginCheckout => "begin_checkout",
            EventType::Purchase => "purchase",
            EventType::Identify => "identify",
            EventType::Custom => "custom",
            EventType::PageLeave => "page_leave",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One event as the tracker sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-generated, unique per event, kept across retries: the key of
    /// exactly-once delivery.
    pub event_id: String,
    pub event_type: EventType,
    /// Client clock, ms since the Unix epoch.
    pub ts: i64,
    pub anonymous_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The tracker's session (renewed after 30 minutes of inactivity). The
    /// backend also computes its own sessions on event time.
    pub session_id: String,
    #[serde(default)]
    pub page: Page,
    #[serde(default)]
    pub props: Props,
    #[serde(default)]
    pub context: Context,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referrer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

macro_rules! wire_props {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// Typed props, one field per prop of [`crate::props::PROPS`]. Which
        /// ones an event type requires is checked by [`crate::validate`];
        /// unknown props (for example `data-*` attributes of a clicked
        /// element) are kept in `extra`.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        pub struct Props {
            $(
                #[doc = $about]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $wire: $crate::wire_prop_type!($kind),
            )*
            #[serde(flatten)]
            pub extra: BTreeMap<String, Value>,
        }
    };
}
crate::with_props!(wire_props);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub screen: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tz: String,
}
