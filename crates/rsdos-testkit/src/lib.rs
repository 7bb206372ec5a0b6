//! Behaviour suites (filled below).
