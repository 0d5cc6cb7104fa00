//! Integration tests: dashboard.
