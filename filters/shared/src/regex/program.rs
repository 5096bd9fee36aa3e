//! Syntax tree to a Thompson NFA, and its simulation: every state the text could be in is
//! followed at once, so a match takes time proportional to the text times the program, never
//! exponential, whatever the pattern.

use super::parse::{Look, Node};
use super::RegexError;

/// Larger programs are refused: a match costs up to this many steps a character.
pub(super) const MAX_STATES: usize = 10_000;

#[derive(Debug)]
pub(super) enum State {
    /// One character in these ranges, then the next state.
    Class(Box<[(u32, u32)]>),
    /// A zero-width assertion, then the next state.
    Look(Look),
    /// Either state.
    Split(usize, usize),
    Jump(usize),
    Match,
}

pub(super) fn compile(node: &Node) -> Result<Vec<State>, RegexError> {
    let mut compiler = Compiler { states: Vec::new() };
    compiler.emit(node)?;
    compiler.push(State::Match)?;
    Ok(compiler.states)
}

struct Compiler {
    states: Vec<State>,
}

impl Compiler {
    fn push(&mut self, state: State) -> Result<usize, RegexError> {
        if self.states.len() >= MAX_STATES {
            return Err(RegexError {
                at: 0,
                message: format!("pattern too large (over {MAX_STATES} states once repetitions are expanded)"),
            });
        }
        self.states.push(state);
        Ok(self.states.len() - 1)
    }

    fn next(&self) -> usize {
        self.states.len()
    }

    /// Points the split or jump at `at` to `target` (a split's second branch).
    fn patch(&mut self, at: usize, target: usize) {
        match self.states.get_mut(at) {
            Some(State::Split(_, second)) => *second = target,
            Some(State::Jump(to)) => *to = target,
            _ => {}
        }
    }

    fn emit(&mut self, node: &Node) -> Result<(), RegexError> {
        match node {
            Node::Empty => {}
            Node::Class(ranges) => {
                self.push(State::Class(ranges.clone().into_boxed_slice()))?;
            }
            Node::Look(look) => {
                self.push(State::Look(*look))?;
            }
            Node::Concat(items) => {
                for item in items {
                    self.emit(item)?;
                }
            }
            Node::Alternation(branches) => {
                let mut exits = Vec::new();
                let (last, others) = branches.split_last().unwrap_or((&Node::Empty, &[]));
                for branch in others {
                    let split = self.push(State::Split(self.next() + 1, 0))?;
                    self.emit(branch)?;
                    exits.push(self.push(State::Jump(0))?);
                    self.patch(split, self.next());
                }
                self.emit(last)?;
                for exit in exits {
                    self.patch(exit, self.next());
                }
            }
            Node::Repeat { node, min, max } => self.repeat(node, *min, *max)?,
            Node::Capture(node) => self.emit(node)?,
        }
        Ok(())
    }

    fn repeat(&mut self, node: &Node, min: u32, max: Option<u32>) -> Result<(), RegexError> {
        for _ in 0..min {
            self.emit(node)?;
        }
        match max {
            None => {
                let split = self.push(State::Split(self.next() + 1, 0))?;
                self.emit(node)?;
                self.push(State::Jump(split))?;
                self.patch(split, self.next());
            }
            Some(max) => {
                // `x{0,3}` as `(x(x(x)?)?)?`: each optional copy may end the repetition.
                let mut splits = Vec::new();
                for _ in min..max {
                    splits.push(self.push(State::Split(self.next() + 1, 0))?);
                    self.emit(node)?;
                }
                for split in splits {
                    self.patch(split, self.next());
                }
            }
        }
        Ok(())
    }
}

/// The state sets and stack of a match, which a regex keeps between matches: a header-name rule
/// runs on every header of every request, and would otherwise allocate five times each time.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    current: StateSet,
    next: StateSet,
    stack: Vec<usize>,
}

/// Whether the program matches the whole of `text`.
pub(super) fn matches_whole(states: &[State], text: &str, scratch: &mut Scratch) -> bool {
    let Scratch { current, next, stack } = scratch;
    current.reset(states.len());
    next.reset(states.len());
    stack.clear();
    let mut chars = text.chars();
    let mut at = Position {
        before: None,
        after: chars.clone().next(),
    };
    current.follow(states, 0, at, stack);
    while let Some(c) = chars.next() {
        if current.is_empty() {
            return false;
        }
        at = Position {
            before: Some(c),
            after: chars.clone().next(),
        };
        for &id in &current.dense {
            if let Some(State::Class(ranges)) = states.get(id) {
                if contains(ranges, c) {
                    next.follow(states, id + 1, at, stack);
                }
            }
        }
        std::mem::swap(current, next);
        next.clear();
    }
    current
        .dense
        .iter()
        .any(|&id| matches!(states.get(id), Some(State::Match)))
}

/// The characters either side of a place in the text, for assertions.
#[derive(Clone, Copy)]
struct Position {
    before: Option<char>,
    after: Option<char>,
}

impl Position {
    fn satisfies(self, look: Look) -> bool {
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        match look {
            Look::TextStart => self.before.is_none(),
            Look::TextEnd => self.after.is_none(),
            Look::LineStart => matches!(self.before, None | Some('\n')),
            Look::LineEnd => matches!(self.after, None | Some('\n')),
            Look::WordBoundary => is_word(self.before) != is_word(self.after),
            Look::NotWordBoundary => is_word(self.before) == is_word(self.after),
            Look::WordStart => !is_word(self.before) && is_word(self.after),
            Look::WordEnd => is_word(self.before) && !is_word(self.after),
        }
    }
}

fn contains(ranges: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    ranges.iter().any(|&(low, high)| low <= c && c <= high)
}

/// The states a thread is in: insertion-ordered, each once, cleared in constant time.
#[derive(Debug, Default)]
struct StateSet {
    dense: Vec<usize>,
    seen: Vec<bool>,
}

impl StateSet {
    /// Empty, for a program of `states` states.
    fn reset(&mut self, states: usize) {
        self.clear();
        self.seen.resize(states, false);
    }

    fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    fn clear(&mut self) {
        for &id in &self.dense {
            if let Some(seen) = self.seen.get_mut(id) {
                *seen = false;
            }
        }
        self.dense.clear();
    }

    /// Adds `start` and every state reachable from it without reading a character.
    fn follow(&mut self, states: &[State], start: usize, at: Position, stack: &mut Vec<usize>) {
        stack.push(start);
        while let Some(id) = stack.pop() {
            match self.seen.get_mut(id) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            self.dense.push(id);
            match states.get(id) {
                Some(State::Split(first, second)) => {
                    stack.push(*second);
                    stack.push(*first);
                }
                Some(State::Jump(to)) => stack.push(*to),
                Some(State::Look(look)) if at.satisfies(*look) => stack.push(id + 1),
                _ => {}
            }
        }
    }
}
