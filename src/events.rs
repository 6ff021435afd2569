//! Registry events: what changed, emitted after the origin accepted a write. Delivered to an
//! `EventSink` (the worker's log for now; webhooks later). Shaped after distribution's
//! notification events.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Push,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub action: Action,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Who did it: `admin:<user>`, `token:<name>` (or `anonymous`).
    pub actor: String,
    /// Unix seconds.
    pub timestamp: u64,
    /// The data centre the request arrived at, when the platform says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo: Option<String>,
}

pub trait EventSink {
    fn emit(&self, event: Event);
}

/// Keeps events in memory, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryEvents(pub std::cell::RefCell<Vec<Event>>);

#[cfg(test)]
impl EventSink for MemoryEvents {
    fn emit(&self, event: Event) {
        self.0.borrow_mut().push(event);
    }
}

impl<T: EventSink + ?Sized> EventSink for &T {
    fn emit(&self, event: Event) {
        (**self).emit(event)
    }
}
