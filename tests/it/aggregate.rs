//! Integration tests: aggregate.
