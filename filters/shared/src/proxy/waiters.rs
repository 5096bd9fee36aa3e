//! Requests paused on a signal ([`Action::Wait`](crate::Action::Wait)), per worker VM.
//!
//! A request that needs the answer of another request's outbound call waits here; whoever
//! gets the answer notifies the signal and every waiter wakes, on its own context.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;

pub trait Wakeable {
    fn wake(&self, signal: &str);
}

thread_local! {
    static WAITERS: RefCell<HashMap<String, Vec<Weak<dyn Wakeable>>>> = RefCell::new(HashMap::new());
}

pub fn register(signal: &str, waiter: Weak<dyn Wakeable>) {
    WAITERS.with(|waiters| waiters.borrow_mut().entry(signal.to_owned()).or_default().push(waiter));
}

/// Wakes every live waiter of `signal`. A waiter that decides to wait again registers anew.
pub fn notify(signal: &str) {
    let woken = WAITERS
        .with(|waiters| waiters.borrow_mut().remove(signal))
        .unwrap_or_default();
    for waiter in woken.iter().filter_map(Weak::upgrade) {
        waiter.wake(signal);
    }
}
