//! Andon's flow rules.
