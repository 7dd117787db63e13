//! Requests the store client retried (throttling, server errors, dropped connections). The
//! `object_store` crate retries inside a request and tells only its log events, so a
//! subscriber of those events counts them for the thread whose request it was: a transfer
//! runs its request on its own thread (in `block_on`), so what a job's transfers retried is
//! counted for the job.

use std::cell::Cell;

use tracing::subscriber::Interest;
use tracing::{span, Event, Metadata, Subscriber};

thread_local! {
    static RETRIED: Cell<u32> = const { Cell::new(0) };
}

/// Where the client logs each retry: its request retry loop, and a download's body read
/// again after the connection broke off (each module logs nothing else).
const TARGETS: [&str; 2] = ["object_store::client::retry", "object_store::client::get"];

/// Counts the client's retry events; every other event and span is of no interest (and, so
/// told once per call site, costs nothing).
struct Counter;

impl Subscriber for Counter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && TARGETS.contains(&metadata.target())
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, _: &Event<'_>) {
        RETRIED.with(|r| r.set(r.get().saturating_add(1)));
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Runs `f` and says how many requests the client retried on this thread meanwhile.
pub(crate) fn counted<T>(f: impl FnOnce() -> T) -> (T, u32) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // fanout sets no other subscriber; were one set, retries would go uncounted.
        let _ = tracing::subscriber::set_global_default(Counter);
    });
    let before = RETRIED.with(Cell::get);
    let value = f();
    (value, RETRIED.with(Cell::get).wrapping_sub(before))
}
