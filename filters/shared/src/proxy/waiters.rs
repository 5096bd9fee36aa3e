//! Requests paused on a signal ([`Action::Wait`](crate::Action::Wait)), per worker VM.
//!
//! A request that needs the answer of another request's outbound call waits here; whoever
//! gets the answer notifies the signal and every waiter wakes, on its own context.

use std::cell::RefCell;
use std::rc::Weak;

pub trait Wakeable {
    fn wake(&self, signal: &str);
}

/// A signal and the requests waiting on it.
type Waiting = (String, Vec<Weak<dyn Wakeable>>);

thread_local! {
    /// The waiters of each signal. A list, not a hash map: only signals someone waits on are here
    /// (an outbound call another request is already making), a handful at a time, and a map type
    /// of its own would add its code to every module.
    static WAITERS: RefCell<Vec<Waiting>> = const { RefCell::new(Vec::new()) };
}

pub fn register(signal: &str, waiter: Weak<dyn Wakeable>) {
    WAITERS.with(|waiters| {
        let Ok(mut waiters) = waiters.try_borrow_mut() else {
            return;
        };
        match waiters.iter_mut().find(|(s, _)| s == signal) {
            Some((_, list)) => list.push(waiter),
            None => waiters.push((signal.to_owned(), vec![waiter])),
        }
    });
}

/// Wakes every live waiter of `signal`. A waiter that decides to wait again registers anew.
pub fn notify(signal: &str) {
    let woken = WAITERS
        .with(|waiters| {
            let mut waiters = waiters.try_borrow_mut().ok()?;
            let i = waiters.iter().position(|(s, _)| s == signal)?;
            Some(waiters.swap_remove(i).1)
        })
        .unwrap_or_default();
    for waiter in woken.iter().filter_map(Weak::upgrade) {
        waiter.wake(signal);
    }
}
