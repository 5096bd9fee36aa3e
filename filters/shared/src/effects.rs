//! What a filter core asks for, as data. The adapter in `proxy/` carries it out; tests inspect it.

use std::fmt;
use std::time::Duration;

use crate::headers::{HeaderName, Headers};
use crate::metrics::Counter;

/// One change to a header map.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Remove every entry with this name, whatever its case or count.
    Remove(HeaderName),
    /// Remove every entry with this name, then add this one value.
    Set(HeaderName, Vec<u8>),
    /// Append a value, keeping existing entries.
    Add(HeaderName, Vec<u8>),
}

/// Names only: the values this filter sets are tokens and claims, which never go to a log.
impl fmt::Debug for HeaderEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderEdit::Remove(name) => write!(f, "Remove({:?})", name.as_str()),
            HeaderEdit::Set(name, value) => write!(f, "Set({:?}, {} bytes)", name.as_str(), value.len()),
            HeaderEdit::Add(name, value) => write!(f, "Add({:?}, {} bytes)", name.as_str(), value.len()),
        }
    }
}

impl HeaderEdit {
    pub fn name(&self) -> &HeaderName {
        match self {
            HeaderEdit::Remove(name) | HeaderEdit::Set(name, _) | HeaderEdit::Add(name, _) => name,
        }
    }
}

/// Drops the edits that change nothing the host would not change anyway: an edit of a name that
/// a later `Set` of that name replaces (a `Set` drops every entry of its name), and a `Remove` of
/// a name nothing was added to since it was last removed. What the map ends up holding is the
/// same; each edit dropped is a host call saved, and on request headers a route-cache clear.
pub fn compact(edits: &mut Vec<HeaderEdit>) {
    if edits.len() < 2 {
        return;
    }
    let redundant: Vec<bool> = edits
        .iter()
        .enumerate()
        .map(|(i, edit)| {
            let name = edit.name();
            let replaced_later = edits
                .iter()
                .skip(i + 1)
                .any(|later| matches!(later, HeaderEdit::Set(n, _) if n == name));
            let last_before = edits.iter().take(i).rev().find(|earlier| earlier.name() == name);
            let removed_already =
                matches!(edit, HeaderEdit::Remove(_)) && matches!(last_before, Some(HeaderEdit::Remove(_)));
            replaced_later || removed_already
        })
        .collect();
    let mut redundant = redundant.into_iter();
    edits.retain(|_| !redundant.next().unwrap_or(false));
}

/// A response the proxy sends itself, without reaching the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
}

impl LocalReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An outbound HTTP call through a named cluster of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    pub cluster: String,
    /// Pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Vec<(HeaderName, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// A unary gRPC call through a named cluster of the host (HTTP/2 to the service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCall {
    pub cluster: String,
    /// `:authority` of the call; empty: the cluster name, as Envoy does.
    pub authority: String,
    /// Fully qualified, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: String,
    pub method: String,
    /// The serialized request message.
    pub message: Vec<u8>,
    pub timeout: Duration,
}

/// The answer to a [`GrpcCall`]: a gRPC status and, with `OK`, the serialized response message.
/// A call the host could not make (timeout, refused connection) is `UNAVAILABLE` or
/// `DEADLINE_EXCEEDED`, as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcOutcome {
    pub status: u32,
    pub message: Vec<u8>,
}

impl GrpcOutcome {
    pub const OK: u32 = 0;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNAVAILABLE: u32 = 14;

    /// What a call that never left gets.
    pub fn unavailable() -> Self {
        Self {
            status: Self::UNAVAILABLE,
            message: Vec::new(),
        }
    }
}

/// The answer to an [`HttpCall`], or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Response {
        status: u16,
        headers: crate::Headers,
        body: Vec<u8>,
    },
    /// Timeout, connection failure or reset: the host produced no response.
    Failed,
}

/// What happens to the stream after a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let the request or response go on through the chain.
    Continue,
    /// Hold it until a later callback (an outbound call's answer) decides.
    Pause,
    /// Hold it until another request (or the root) notifies this signal; then
    /// [`HttpFilter::on_wake`](crate::HttpFilter::on_wake) decides. How one request waits on
    /// another's outbound call (single-flight).
    Wait(String),
    /// Answer the client now.
    Reply(LocalReply),
}

/// A key written to request-scoped filter state, readable by the filters behind this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateWrite {
    /// One of the filters' fixed keys.
    pub key: &'static str,
    pub value: Vec<u8>,
}

/// Everything a callback decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub header_edits: Vec<HeaderEdit>,
    pub calls: Vec<HttpCall>,
    pub grpc_calls: Vec<GrpcCall>,
    pub state_writes: Vec<StateWrite>,
    pub counters: Vec<Counter>,
    /// Signals to notify after this step is carried out: requests waiting on them wake up.
    pub notify: Vec<String>,
    /// If this request goes away while it waits (for its calls, or for a signal), notify these
    /// signals so that the requests waiting on its answers do not wait in vain. Replaces what
    /// earlier steps set; a step that lets the request go on or answers it ends the wait.
    pub notify_if_abandoned: Vec<String>,
}

impl Step {
    pub fn proceed() -> Self {
        Self::with_action(Action::Continue)
    }

    pub fn reply(reply: LocalReply) -> Self {
        Self::with_action(Action::Reply(reply))
    }

    pub fn pause() -> Self {
        Self::with_action(Action::Pause)
    }

    fn with_action(action: Action) -> Self {
        Self {
            action,
            header_edits: Vec::new(),
            calls: Vec::new(),
            grpc_calls: Vec::new(),
            state_writes: Vec::new(),
            counters: Vec::new(),
            notify: Vec::new(),
            notify_if_abandoned: Vec::new(),
        }
    }

    pub fn wait(signal: impl Into<String>) -> Self {
        Self::with_action(Action::Wait(signal.into()))
    }

    pub fn notify(mut self, signal: impl Into<String>) -> Self {
        self.notify.push(signal.into());
        self
    }

    pub fn edit(mut self, edit: HeaderEdit) -> Self {
        self.header_edits.push(edit);
        self
    }

    /// Removes each of `names` that `section` (request headers or trailers) carries: what a
    /// filter does with a client's copies of the headers it sets for the upstream.
    /// Removes every header of `section` that reads as one of `names`: in any letter case, and
    /// with `_` for `-`, as Rack and CGI servers read `x_user_id` as `x-user-id`.
    pub fn remove_present<'a>(mut self, section: &Headers, names: impl IntoIterator<Item = &'a HeaderName>) -> Self {
        let mut present: Vec<&str> = Vec::new();
        for wanted in names {
            for (name, _) in section.iter() {
                if !present.contains(&name) && crate::headers::is_one_of(&[wanted.as_str()], name) {
                    present.push(name);
                    self.header_edits.push(HeaderEdit::Remove(HeaderName::trusted(name)));
                }
            }
        }
        self
    }

    pub fn count(mut self, counter: Counter) -> Self {
        self.counters.push(counter);
        self
    }

    /// Signals to notify if this request goes away while it waits.
    pub fn notify_if_abandoned(mut self, signals: Vec<String>) -> Self {
        self.notify_if_abandoned = signals;
        self
    }

    pub fn call(mut self, call: HttpCall) -> Self {
        self.calls.push(call);
        self
    }

    pub fn grpc_call(mut self, call: GrpcCall) -> Self {
        self.grpc_calls.push(call);
        self
    }

    pub fn publish(mut self, key: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.state_writes.push(StateWrite {
            key,
            value: value.into(),
        });
        self
    }

    /// The names this step removes from the headers, in order (for tests and logs).
    pub fn removed_headers(&self) -> Vec<String> {
        self.header_edits
            .iter()
            .filter_map(|edit| match edit {
                HeaderEdit::Remove(name) => Some(name.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The reply, if this step answers the client.
    pub fn local_reply(&self) -> Option<&LocalReply> {
        match &self.action {
            Action::Reply(reply) => Some(reply),
            _ => None,
        }
    }
}

/// What background work in the root context decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootStep {
    /// Outbound calls, each with a tag the answer comes back with.
    pub calls: Vec<(u32, HttpCall)>,
    pub counters: Vec<Counter>,
    pub notify: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// A failed edit is logged with its `Debug`: the name, never the token or claims it carries.
    #[wasm_bindgen_test(unsupported = test)]
    fn debug_shows_names_never_values() {
        let edit = HeaderEdit::Set(HeaderName::trusted("authorization"), b"Bearer eyJhbGciOi".to_vec());
        assert_eq!(format!("{edit:?}"), r#"Set("authorization", 17 bytes)"#);
        let edit = HeaderEdit::Add(HeaderName::trusted("x-user"), b"alice".to_vec());
        assert_eq!(format!("{edit:?}"), r#"Add("x-user", 5 bytes)"#);
    }

    fn remove(name: &str) -> HeaderEdit {
        HeaderEdit::Remove(HeaderName::trusted(name))
    }

    fn set(name: &str, value: &str) -> HeaderEdit {
        HeaderEdit::Set(HeaderName::trusted(name), value.as_bytes().to_vec())
    }

    fn add(name: &str, value: &str) -> HeaderEdit {
        HeaderEdit::Add(HeaderName::trusted(name), value.as_bytes().to_vec())
    }

    fn compacted(mut edits: Vec<HeaderEdit>) -> Vec<HeaderEdit> {
        compact(&mut edits);
        edits
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn compacting_drops_what_a_later_set_replaces_and_repeated_removes() {
        assert_eq!(
            compacted(vec![
                remove("x-user"),
                remove("x-trace"),
                set("x-user", "a"),
                set("x-scope", "s")
            ]),
            [remove("x-trace"), set("x-user", "a"), set("x-scope", "s")]
        );
        assert_eq!(
            compacted(vec![set("a", "1"), add("a", "2"), set("a", "3")]),
            [set("a", "3")]
        );
        assert_eq!(
            compacted(vec![remove("a"), remove("b"), remove("a")]),
            [remove("a"), remove("b")]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn compacting_keeps_every_edit_that_changes_the_map() {
        let kept = [
            vec![add("vary", "Origin"), add("vary", "Accept")],
            vec![set("a", "1"), remove("a")],
            vec![remove("a"), add("a", "1"), remove("a")],
            vec![set("a", "1"), add("a", "2")],
        ];
        for edits in kept {
            assert_eq!(compacted(edits.clone()), edits);
        }
    }

    /// Whatever the edits, the compacted ones leave a map as the full list would.
    #[wasm_bindgen_test(unsupported = test)]
    fn compacted_edits_give_the_same_headers() {
        let names = ["a", "b"];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let mut edits = Vec::new();
            for _ in 0..(seed % 6) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let name = names.get((seed >> 8) as usize % 2).copied().unwrap_or("a");
                let value = ((seed >> 12) % 3).to_string();
                edits.push(match (seed >> 16) % 3 {
                    0 => remove(name),
                    1 => set(name, &value),
                    _ => add(name, &value),
                });
            }
            let start = crate::headers::Headers::from_pairs([("a", "x"), ("b", "y"), ("a", "z")]);
            let mut full = start.clone();
            full.apply(&edits);
            let mut short = start;
            short.apply(&compacted(edits.clone()));
            assert_eq!(
                short.iter().collect::<Vec<_>>(),
                full.iter().collect::<Vec<_>>(),
                "{edits:?}"
            );
        }
    }
}
