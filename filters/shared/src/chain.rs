//! Several filters as one plugin: the `chain` root of a module that hosts several filters.
//!
//! Envoy charges every wasm plugin on every request: its own HTTP context, a call into the VM for
//! each stream event, and a copy of the header map for each callback that reads it. A chain runs
//! its members, in order, inside one plugin, so a request pays that once. What each member sees is
//! what it would see as its own plugin behind the earlier ones:
//!
//! - request headers with the earlier members' edits applied;
//! - filter state the earlier members published on this request;
//! - on the response, the members in reverse order (Envoy's encoder order), each after the
//!   edits of the ones it follows;
//! - trailers, in the order of their message's headers, each member after the earlier ones' edits;
//! - a member that pauses (an outbound call, a wait) holds the request; when it goes on, the
//!   members after it run; a member that answers locally ends the request path there;
//! - only the members that saw the request run on its response and trailers: on a member's
//!   local reply, or Envoy's own while a member holds the request, the ones behind do not.
//!
//! Each member keeps its own config, counters (under its own name), shared data and background
//! work; the chain tags the members' background calls with the member's position.

use std::rc::Rc;
use std::time::Duration;

use crate::config::FromConfig;

use crate::config::{ConfigError, FieldPath};
use crate::effects::{Action, CallOutcome, GrpcOutcome, RootStep, StateWrite, Step};
use crate::filter::{Configure, DynRoot, HttpFilter};
use crate::headers::Headers;
use crate::metrics::MetricRegistry;
use crate::ports::{Ctx, Properties};

/// The `root_id` of a chain.
pub const NAME: &str = "chain";

/// A background call's tag carries the member's position above this many bits.
const TAG_BITS: u32 = 24;

#[derive(FromConfig)]
#[serde(deny_unknown_fields)]
struct Config {
    filters: Vec<MemberConfig>,
}

#[derive(FromConfig)]
#[serde(deny_unknown_fields)]
struct MemberConfig {
    /// The member's `root_id` as a plugin of its own.
    filter: String,
    /// Its config, as it would be given to that plugin; absent: `{}`. A `null` is handed on as it
    /// is, and refused as that plugin refuses it.
    #[serde(default = "empty_config")]
    config: serde_json::Value,
}

fn empty_config() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

struct Member {
    root: Rc<dyn DynRoot>,
}

/// A configured chain.
pub struct Chain {
    members: Vec<Member>,
}

/// Configures a chain: each member by the [`Configure`] that `lookup` finds for its name, with
/// its counters under that name. Errors in a member's config carry its place in the chain.
pub fn configure(
    raw: &[u8],
    metrics: &mut MetricRegistry,
    lookup: &dyn Fn(&str) -> Option<Configure>,
    hosted: &[&str],
) -> Result<Chain, ConfigError> {
    let config: Config = crate::config::parse(raw)?;
    let filters = FieldPath::root().field("filters");
    if config.filters.is_empty() {
        return Err(filters.error("name at least one filter"));
    }
    let mut members = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, member) in config.filters.iter().enumerate() {
        let at = filters.index(i);
        let name = member.filter.as_str();
        let configure = lookup(name).filter(|_| name != NAME).ok_or_else(|| {
            at.field("filter").error(format!(
                "{name:?} is not a filter of this module, which hosts {}",
                hosted.join(", ")
            ))
        })?;
        if names.contains(&name) {
            return Err(at.field("filter").error(format!("{name} is already in the chain")));
        }
        names.push(name);
        let raw = member.config.to_string();
        metrics.switch_to(name);
        let root = configure(raw.as_bytes(), metrics).map_err(|e| inside(&at.field("config"), e))?;
        members.push(Member { root });
    }
    Ok(Chain { members })
}

/// A member's config error, with the path from the chain's config root.
fn inside(at: &FieldPath, error: ConfigError) -> ConfigError {
    let base = at.as_str();
    let path = match error.path.as_str() {
        "" => base.to_owned(),
        p if p.starts_with('[') => format!("{base}{p}"),
        p => format!("{base}.{p}"),
    };
    ConfigError::new(path, error.message)
}

fn tag(member: usize, tag: u32) -> Option<u32> {
    let member = u32::try_from(member).ok()?;
    (tag >> TAG_BITS == 0).then_some((member << TAG_BITS) | tag)
}

/// The members' background steps as one, their calls tagged with their position.
fn merged_root_steps(steps: impl Iterator<Item = (usize, RootStep)>) -> RootStep {
    let mut merged = RootStep::default();
    for (member, step) in steps {
        for (inner, call) in step.calls {
            match tag(member, inner) {
                Some(tag) => merged.calls.push((tag, call)),
                None => log::error!("chain: a background call of member {member} has a tag too large to route"),
            }
        }
        merged.counters.extend(step.counters);
        merged.notify.extend(step.notify);
    }
    merged
}

impl DynRoot for Chain {
    fn new_filter(self: Rc<Self>) -> Box<dyn HttpFilter> {
        Box::new(ChainFilter {
            members: self.members.iter().map(|m| Rc::clone(&m.root).new_filter()).collect(),
            paused_at: None,
            reached: 0,
            request_headers: Headers::new(),
        })
    }

    /// The shortest of the members' periods: members' background work is due by the clock, so a
    /// tick sooner than a member asked for finds nothing due.
    fn tick_period(&self) -> Option<Duration> {
        self.members.iter().filter_map(|m| m.root.tick_period()).min()
    }

    fn on_start(&self, ctx: &Ctx) -> RootStep {
        merged_root_steps(self.members.iter().enumerate().map(|(i, m)| (i, m.root.on_start(ctx))))
    }

    fn on_tick(&self, ctx: &Ctx) -> RootStep {
        let ticking = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.root.tick_period().is_some());
        merged_root_steps(ticking.map(|(i, m)| (i, m.root.on_tick(ctx))))
    }

    fn on_call_response(&self, tag: u32, outcome: CallOutcome, ctx: &Ctx) -> RootStep {
        let member = usize::try_from(tag >> TAG_BITS).unwrap_or(usize::MAX);
        let Some(m) = self.members.get(member) else {
            return RootStep::default();
        };
        let step = m.root.on_call_response(tag & ((1 << TAG_BITS) - 1), outcome, ctx);
        merged_root_steps(std::iter::once((member, step)))
    }
}

/// One request through the chain.
pub struct ChainFilter {
    members: Vec<Box<dyn HttpFilter>>,
    /// The member holding the request, while one does.
    paused_at: Option<usize>,
    /// How many members have seen the request headers. Only they run on the response and on
    /// trailers: Envoy skips a plugin whose request callback never ran (the members behind one
    /// that answered, or that still holds the request when Envoy answers itself).
    reached: usize,
    /// The request headers as the members after the paused one will see them.
    request_headers: Headers,
}

/// Filter state as the member being run sees it: what the earlier members published in this
/// callback (not yet written to the host), then the host's.
struct Published<'a> {
    writes: &'a [StateWrite],
    host: &'a dyn Properties,
}

impl Properties for Published<'_> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.host.property(path)
    }

    fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        match self.writes.iter().rev().find(|w| w.key == key) {
            Some(write) => Some(write.value.clone()),
            None => self.host.filter_state(key),
        }
    }
}

/// Adds `step`'s effects to `into` and returns its action.
fn absorb(into: &mut Step, step: Step) -> Action {
    into.header_edits.extend(step.header_edits);
    into.calls.extend(step.calls);
    into.grpc_calls.extend(step.grpc_calls);
    into.state_writes.extend(step.state_writes);
    into.counters.extend(step.counters);
    into.notify.extend(step.notify);
    if !step.notify_if_abandoned.is_empty() {
        into.notify_if_abandoned = step.notify_if_abandoned;
    }
    step.action
}

/// Runs `deliver` on `members` in turn, each seeing `section` (response headers, or trailers) with
/// the edits of those before it; stops at the first that does not go on.
fn run_section<'a>(
    members: impl Iterator<Item = &'a mut Box<dyn HttpFilter>>,
    mut section: Headers,
    mut deliver: impl FnMut(&mut dyn HttpFilter, &Headers) -> Step,
) -> Step {
    let mut step = Step::proceed();
    let mut members = members.peekable();
    while let Some(member) = members.next() {
        let own = deliver(&mut **member, &section);
        if members.peek().is_some() {
            section.apply(&own.header_edits);
        }
        let action = absorb(&mut step, own);
        if action != Action::Continue {
            step.action = action;
            return step;
        }
    }
    step
}

impl ChainFilter {
    /// The members that have seen the request headers, in order.
    fn reached_mut(&mut self) -> std::slice::IterMut<'_, Box<dyn HttpFilter>> {
        let reached = self.reached.min(self.members.len());
        self.members.get_mut(..reached).unwrap_or_default().iter_mut()
    }

    /// Runs the members from `first` on the request, after the effects already in `step`.
    fn run_request(&mut self, first: usize, mut headers: Headers, mut step: Step, ctx: &Ctx) -> Step {
        let last = self.members.len().saturating_sub(1);
        for (i, member) in self.members.iter_mut().enumerate().skip(first) {
            self.reached = i + 1;
            let published = Published {
                writes: &step.state_writes,
                host: ctx.properties,
            };
            let own = member.on_request_headers(
                &headers,
                &Ctx {
                    properties: &published,
                    ..*ctx
                },
            );
            if i < last {
                headers.apply(&own.header_edits);
            }
            match absorb(&mut step, own) {
                Action::Continue => {}
                action @ (Action::Pause | Action::Wait(_)) => {
                    self.paused_at = Some(i);
                    self.request_headers = headers;
                    step.action = action;
                    return step;
                }
                action @ Action::Reply(_) => {
                    step.action = action;
                    return step;
                }
            }
        }
        step.action = Action::Continue;
        step
    }

    /// The paused member's answer to what it waited for; if it goes on, so do the rest.
    fn resume(&mut self, ctx: &Ctx, deliver: impl FnOnce(&mut dyn HttpFilter, &Ctx) -> Step) -> Step {
        let Some(i) = self.paused_at else {
            return Step::proceed();
        };
        let Some(member) = self.members.get_mut(i) else {
            return Step::proceed();
        };
        let step = deliver(&mut **member, ctx);
        if step.action != Action::Continue {
            self.request_headers.apply(&step.header_edits);
            return step;
        }
        self.paused_at = None;
        let mut headers = std::mem::take(&mut self.request_headers);
        headers.apply(&step.header_edits);
        self.run_request(i + 1, headers, step, ctx)
    }
}

impl HttpFilter for ChainFilter {
    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        self.take_request_headers(headers.clone(), ctx)
    }

    fn take_request_headers(&mut self, headers: Headers, ctx: &Ctx) -> Step {
        self.run_request(0, headers, Step::proceed(), ctx)
    }

    fn on_response_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        self.take_response_headers(headers.clone(), ctx)
    }

    fn take_response_headers(&mut self, headers: Headers, ctx: &Ctx) -> Step {
        // Members run in reverse: the first member is the last to see the headers.
        let members = self.reached_mut().rev().filter(|m| m.reads_response_headers());
        run_section(members, headers, |member, headers| {
            member.on_response_headers(headers, ctx)
        })
    }

    fn on_request_trailers(&mut self, trailers: &Headers, ctx: &Ctx) -> Step {
        run_section(self.reached_mut(), trailers.clone(), |member, trailers| {
            member.on_request_trailers(trailers, ctx)
        })
    }

    fn on_response_trailers(&mut self, trailers: &Headers, ctx: &Ctx) -> Step {
        run_section(self.reached_mut().rev(), trailers.clone(), |member, trailers| {
            member.on_response_trailers(trailers, ctx)
        })
    }

    fn reads_response_headers(&self) -> bool {
        let reached = self.members.get(..self.reached).unwrap_or_default();
        reached.iter().any(|m| m.reads_response_headers())
    }

    fn on_call_response(&mut self, outcome: CallOutcome, ctx: &Ctx) -> Step {
        self.resume(ctx, |member, ctx| member.on_call_response(outcome, ctx))
    }

    fn on_grpc_response(&mut self, outcome: GrpcOutcome, ctx: &Ctx) -> Step {
        self.resume(ctx, |member, ctx| member.on_grpc_response(outcome, ctx))
    }

    fn on_wake(&mut self, signal: &str, ctx: &Ctx) -> Step {
        self.resume(ctx, |member, ctx| member.on_wake(signal, ctx))
    }

    fn on_abandoned(&mut self, ctx: &Ctx) {
        if let Some(member) = self.paused_at.and_then(|i| self.members.get_mut(i)) {
            member.on_abandoned(ctx);
        }
    }
}

#[cfg(test)]
mod tests;
