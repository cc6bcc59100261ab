#![recursion_limit = "512"]
//! A loopback Stripe for development and tests.
//!
//! It speaks Stripe's HTTP API (same paths, form encoding, auth header, error JSON,
//! idempotency keys) for the subset a billing app uses, serves hosted Checkout pages
//! that honour Stripe's test cards, and delivers events signed exactly as Stripe
//! signs them. State lives in memory (optionally snapshotted to a JSON file).
//! Test controls live under `/_emulator`, never under `/v1`.

pub mod api;
pub mod billing;
pub mod context;
pub mod control;
pub mod error;
pub mod form;
pub mod hosted;
pub mod objects;
pub mod params;
pub mod resources;
pub mod store;
pub mod webhooks;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;
use tokio::{net::TcpListener, sync::mpsc};

use crate::{store::Store, webhooks::Outgoing};

/// The API version the emulator's objects follow: the one async-stripe 1.0 pins.
pub const API_VERSION: &str = "2026-09-30.endive";

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per event and endpoint, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time (Stripe: hours, here: seconds).
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// An endpoint that receives every event, like `stripe listen --forward-to`.
    pub forward_to: Option<ForwardTarget>,
    pub retry: RetryPolicy,
    /// Load state from, and save it to, this JSON file.
    pub snapshot: Option<PathBuf>,
    /// The account's public business name (Stripe's dashboard setting), which
    /// hosted pages show, e.g. the portal's "Return to …".
    pub business_name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ForwardTarget {
    pub url: String,
    pub secret: String,
}

pub struct Emulator {
    store: Mutex<Store>,
    pub config: EmulatorConfig,
    /// `http://127.0.0.1:PORT/`: where hosted pages and invoice links point.
    pub base_url: String,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Deliveries held back by the "hold" test control until flushed.
    pub(crate) held: Mutex<Vec<Outgoing>>,
    /// Authenticated `/v1` requests served, for tests that count Stripe calls.
    pub(crate) api_requests: std::sync::atomic::AtomicU64,
    /// Idempotency keys whose request is being answered: a second request
    /// with one of them meanwhile gets Stripe's 409.
    pub(crate) in_flight: Mutex<std::collections::HashSet<String>>,
    /// Requests answered 409 for a key in flight, for tests.
    pub(crate) key_conflicts: std::sync::atomic::AtomicU64,
}

impl Emulator {
    /// Locks the account state. Handlers are synchronous and short, so a std mutex
    /// is right; it is never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn send(&self, outgoing: Vec<Outgoing>) {
        for item in outgoing {
            let _ = self.outbox.send(item);
        }
    }

    /// Writes the snapshot file, if one is configured.
    pub fn save_snapshot(&self) {
        if let Some(path) = &self.config.snapshot {
            let json = serde_json::to_vec(&*self.lock()).expect("state serializes");
            if let Err(err) = std::fs::write(path, json) {
                tracing::warn!(error = %err, path = %path.display(), "could not save the emulator snapshot");
            }
        }
    }
}

/// A running emulator. Dropping it does not stop the server; call [`Running::stop`].
pub struct Running {
    pub addr: SocketAddr,
    pub base_url: String,
    pub emulator: Arc<Emulator>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
        self.emulator.save_snapshot();
    }
}

/// Serves the emulator on `listener` until [`Running::stop`].
pub async fn start(listener: TcpListener, config: EmulatorConfig) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}/");
    let store = match &config.snapshot {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path)?;
            serde_json::from_slice(&bytes)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?
        }
        _ => Store::default(),
    };
    let (outbox, inbox) = mpsc::unbounded_channel();
    let emulator = Arc::new(Emulator {
        store: Mutex::new(store),
        config,
        base_url: base_url.clone(),
        outbox,
        held: Mutex::new(Vec::new()),
        api_requests: std::sync::atomic::AtomicU64::new(0),
        in_flight: Mutex::new(std::collections::HashSet::new()),
        key_conflicts: std::sync::atomic::AtomicU64::new(0),
    });
    webhooks::spawn_deliverer(emulator.clone(), inbox);

    let app = axum::Router::new()
        .merge(api::routes())
        .merge(hosted::routes())
        .merge(control::routes())
        .with_state(emulator.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Running {
        addr,
        base_url,
        emulator,
        shutdown: Some(tx),
        task,
    })
}

/// Reads a string field of a JSON object.
pub(crate) fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
