//! Error types: model edits and validation, Unleash import, evaluation.

use serde::{Deserialize, Serialize};

/// Editing or validating a [`crate::FlagSet`] went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown flag '{0}'")]
    UnknownFlag(String),
    #[error("flag '{flag}' has no environment '{env}'")]
    UnknownEnv { flag: String, env: String },
    #[error("percentage {0} is not in 0..=100")]
    BadPercentage(f64),
    #[error(
        "flag '{0}' has no variant to roll out: give its environment a rule with `serve` first"
    )]
    NoRolloutVariant(String),
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

/// An Unleash document could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an Unleash features document: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "feature '{feature}': the variant name '{variant}' is reserved by Unleash for \"no variant\""
    )]
    ReservedVariant { feature: String, variant: String },
    #[error(
        "feature '{feature}': variant '{variant}' is defined twice with different payloads (Andon's variants are per flag)"
    )]
    ConflictingVariant { feature: String, variant: String },
}

/// OFREP error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    ParseError,
    TargetingKeyMissing,
    InvalidContext,
    General,
    TypeMismatch,
}

/// Why an evaluation answered with `reason: ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
#[serde(rename_all = "camelCase")]
pub struct EvalError {
    #[serde(rename = "errorCode")]
    pub code: ErrorCode,
    #[serde(rename = "errorDetails")]
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EvalError {
            code,
            message: message.into(),
        }
    }
}
