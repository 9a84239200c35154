//! An OpenFeature provider (the `open-feature` crate, 0.3): evaluation
//! through the OpenFeature API, served from the client's snapshot.

use std::collections::HashMap;

use andon_flags::{Context, ErrorCode, Reason};
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, StructValue, Value as OfValue,
};
use serde_json::Value;

use crate::Client;

/// Resolves flags for OpenFeature from an Andon [`Client`]:
/// `OpenFeature::singleton_mut().await.set_provider(client.provider())`.
pub struct AndonProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl AndonProvider {
    pub fn new(client: Client) -> Self {
        AndonProvider {
            client,
            metadata: ProviderMetadata::new("andon"),
        }
    }

    fn resolve<T>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let e = self.client.evaluate(key, &context(ctx));
        if let Some(err) = e.error {
            return Err(EvaluationError {
                code: error_code(err.code),
                message: Some(err.message),
            });
        }
        let value = pick(&e.value).ok_or_else(|| EvaluationError {
            code: EvaluationErrorCode::TypeMismatch,
            message: Some(format!("flag `{key}` served {}", e.value)),
        })?;
        Ok(ResolutionDetails {
            value,
            variant: e.variant,
            reason: Some(reason(e.reason)),
            flag_metadata: None,
        })
    }
}

fn error_code(c: ErrorCode) -> EvaluationErrorCode {
    match c {
        ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorCode::ParseError => EvaluationErrorCode::ParseError,
        ErrorCode::TargetingKeyMissing => EvaluationErrorCode::TargetingKeyMissing,
        ErrorCode::InvalidContext => EvaluationErrorCode::InvalidContext,
        ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorCode::General => EvaluationErrorCode::General("evaluation failed".into()),
    }
}

fn reason(r: Reason) -> EvaluationReason {
    match r {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Default => EvaluationReason::Default,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::PrerequisiteFailed => EvaluationReason::Other("PREREQUISITE_FAILED".into()),
        Reason::Error => EvaluationReason::Error,
    }
}

/// OpenFeature's context as Andon's: the targeting key, and the scalar
/// fields (dates as RFC 3339; opaque structs are left out).
fn context(ctx: &EvaluationContext) -> Context {
    let mut out = Context {
        targeting_key: ctx.targeting_key.clone(),
        attributes: Default::default(),
    };
    for (k, v) in &ctx.custom_fields {
        let value = match v {
            EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
            EvaluationContextFieldValue::Int(i) => Value::from(*i),
            EvaluationContextFieldValue::Float(f) => Value::from(*f),
            EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
            EvaluationContextFieldValue::DateTime(t) => {
                match jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos()) {
                    Ok(ts) => Value::String(ts.to_string()),
                    Err(_) => continue,
                }
            }
            EvaluationContextFieldValue::Struct(_) => continue,
        };
        out.attributes.insert(k.clone(), value);
    }
    out
}

/// JSON as OpenFeature's value (`null` has no equivalent).
fn of_value(v: &Value) -> Option<OfValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => OfValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OfValue::Int(i),
            None => OfValue::Float(n.as_f64()?),
        },
        Value::String(s) => OfValue::String(s.clone()),
        Value::Array(a) => OfValue::Array(a.iter().filter_map(of_value).collect()),
        Value::Object(o) => OfValue::Struct(StructValue {
            fields: o
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), of_value(v)?)))
                .collect::<HashMap<_, _>>(),
        }),
    })
}

#[async_trait::async_trait]
impl FeatureProvider for AndonProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        if self.client.is_ready() {
            ProviderStatus::Ready
        } else {
            ProviderStatus::NotReady
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, ctx, Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, ctx, Value::as_i64)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, ctx, Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, ctx, |v| v.as_str().map(str::to_owned))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, ctx, |v| match of_value(v) {
            Some(OfValue::Struct(s)) => Some(s),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_to_openfeature_values() {
        let v = of_value(&json!({"a": 1, "b": [true, 2.5], "c": null})).unwrap();
        let OfValue::Struct(s) = v else { panic!() };
        assert_eq!(s.fields["a"], OfValue::Int(1));
        assert_eq!(
            s.fields["b"],
            OfValue::Array(vec![OfValue::Bool(true), OfValue::Float(2.5)])
        );
        assert!(!s.fields.contains_key("c"));
    }

    #[test]
    fn context_fields_carry_over() {
        let ctx = EvaluationContext::default()
            .with_targeting_key("u1")
            .with_custom_field("country", "no")
            .with_custom_field("age", 42);
        let c = context(&ctx);
        assert_eq!(c.targeting_key.as_deref(), Some("u1"));
        assert_eq!(c.attributes["country"], json!("no"));
        assert_eq!(c.attributes["age"], json!(42));
    }
}
