//! Feature-flag evaluation: rules, segments, stable bucketing; Unleash import.
