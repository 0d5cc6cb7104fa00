//! Pure encoding: a build summary → metric datums (placeholder until metrics land).
