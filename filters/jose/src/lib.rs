//! JOSE core (in progress).
