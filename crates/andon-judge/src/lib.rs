//! Anytime-valid sequential tests that judge a canary against its baseline.
