//! Integration tests: metrics sinks against ministack.
