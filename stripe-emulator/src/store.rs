//! The emulator's in-memory account: every object by id, creation order per type,
//! private side data, idempotency records, the clock and the test controls' settings.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Default, Serialize, Deserialize)]
pub struct Store {
    objects: HashMap<String, Value>,
    order: HashMap<String, Vec<String>>,
    /// Data Stripe keeps but never shows (card numbers behind a payment method,
    /// webhook secrets after creation, retry counters), by object id.
    pub private: HashMap<String, Value>,
    pub idempotency: HashMap<String, IdempotentResponse>,
    /// Seconds added to the wall clock by the "advance time" test control.
    pub time_offset: i64,
    pub invoice_counter: u64,
    #[serde(skip)]
    pub deliveries: Vec<DeliveryRecord>,
    #[serde(skip)]
    pub faults: Faults,
    #[serde(skip)]
    pub delivery_mode: DeliveryMode,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct IdempotentResponse {
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: i64,
}

/// Fault injection on `/v1` calls (test control).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Fraction of calls, 0.0..=1.0, that fail.
    pub rate: f64,
    /// Which failures to draw from: "500", "429", "hang".
    pub kinds: Vec<String>,
    /// How long a "hang" holds the response (after processing the request).
    pub hang_ms: u64,
}

/// How events reach webhook endpoints (test control).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryMode {
    /// Each event is sent this many times.
    pub duplicates: u32,
    /// Random extra delay per delivery, up to this many milliseconds (reorders events).
    pub max_delay_ms: u64,
    /// The first N attempts of every event get no request (as if lost), then retries run.
    pub drop_first: u32,
    /// While true, events are queued instead of sent; `flush` releases them shuffled.
    pub hold: bool,
}

impl Default for DeliveryMode {
    fn default() -> Self {
        Self {
            duplicates: 1,
            max_delay_ms: 0,
            drop_first: 0,
            hold: false,
        }
    }
}

impl Store {
    pub fn insert(&mut self, object: Value) -> Value {
        let id = object["id"].as_str().expect("objects have ids").to_owned();
        let kind = object["object"]
            .as_str()
            .expect("objects have a type")
            .to_owned();
        if !self.objects.contains_key(&id) {
            self.order.entry(kind).or_default().push(id.clone());
        }
        self.objects.insert(id, object.clone());
        object
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.objects.get_mut(id)
    }

    /// Objects of one type, newest first (Stripe's list order).
    pub fn list(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.order
            .get(kind)
            .into_iter()
            .flat_map(|ids| ids.iter().rev())
            .filter_map(|id| self.objects.get(id))
    }

    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let object = self.objects.remove(id)?;
        if let Some(kind) = object["object"].as_str() {
            if let Some(ids) = self.order.get_mut(kind) {
                ids.retain(|other| other != id);
            }
        }
        Some(object)
    }

    pub fn private(&mut self, id: &str) -> &mut Value {
        self.private
            .entry(id.to_owned())
            .or_insert_with(|| Value::Object(Default::default()))
    }
}
