//! The route table as the control plane sends it (`PUT /routes`) and as it is persisted.
//!
//! Parsing and checking are two steps: serde reads the raw shape, then [`RouteTable::validate`]
//! checks the rules the data plane relies on (weights add up, weighted versions have endpoints,
//! routes name existing services). The checked table is compiled into the hot-path form in
//! `compiled.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The header that forces a version when a service does not name its own.
pub const DEFAULT_OVERRIDE_HEADER: &str = "x-andon-version";

/// The whole routing state of the data plane, replaced in one piece on every change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    /// Increases with every change; a table with a lower generation than the current one is
    /// refused, so a delayed or replayed PUT from the control plane cannot roll routing back.
    pub generation: u64,
    /// Services by name (conventionally `project/environment`).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSpec>,
    /// Which requests go to which service: by host and longest path prefix.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// The versions of one service and how traffic is spread over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// List the baseline first and the newest version last: weighted versions take the bucket
    /// line `0..100` from the LAST listed one down, so the newest (the canary) owns the low
    /// buckets `[0, w)` and users already on it stay there when its weight grows.
    pub versions: Vec<VersionSpec>,
    /// Where a user's bucket comes from; `None` draws a fresh bucket per request.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// Header whose value (a version name or id) forces that version, even at weight 0.
    /// Defaults to `x-andon-version`; an explicit `null` turns overrides off.
    #[serde(default = "default_override_header")]
    pub override_header: Option<String>,
    /// Shadow traffic to a (usually dark) version.
    #[serde(default)]
    pub mirror: Option<MirrorSpec>,
}

fn default_override_header() -> Option<String> {
    Some(DEFAULT_OVERRIDE_HEADER.to_owned())
}

/// One deployed version of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSpec {
    /// Role name, unique in the service: `stable`, `canary`, `dark`, `blue`...
    pub name: String,
    /// Artifact identity, e.g. `sha256:ab12...`.
    pub version: String,
    /// Share of traffic in percent; 0 means dark (reachable by override or mirror only).
    pub weight: u32,
    /// `host:port` of each instance.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// Source of a user's bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sticky {
    /// A cookie set by the router holding a random bucket `0..100`.
    Cookie(String),
    /// A request header (e.g. a user id) hashed into a bucket.
    Header(String),
}

/// Copy a share of live requests to another version and compare its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorSpec {
    /// Version name (or id) receiving the copies.
    pub to: String,
    /// Share of live requests copied, 0 to 100.
    pub percent: f64,
}

/// A rule sending requests to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Host to match (port ignored, case-insensitive); `None` matches any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`.
    pub path_prefix: String,
    /// Name of a service in [`RouteTable::services`].
    pub service: String,
}

/// Why a route table was refused; `code()` is the stable machine-readable part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The weights of a service do not add up.
    #[error(
        "service '{service}': weights add up to {sum}, expected 100 (or 0 when every version is dark)"
    )]
    Weights {
        /// Service name.
        service: String,
        /// The sum found.
        sum: u64,
    },
    /// A version that takes traffic (or is the mirror target) has nowhere to send it.
    #[error(
        "service '{service}': version '{version}' has weight or mirror traffic but no endpoints"
    )]
    NoEndpoints {
        /// Service name.
        service: String,
        /// Version name.
        version: String,
    },
    /// A field value is malformed.
    #[error("{at}: {message}")]
    Invalid {
        /// Where: `services.shop/production.versions[1].endpoints[0]`, `routes[2]`...
        at: String,
        /// What is wrong.
        message: String,
    },
}

impl TableError {
    /// Stable error code for JSON answers.
    pub fn code(&self) -> &'static str {
        match self {
            TableError::Weights { .. } => "invalid_weights",
            TableError::NoEndpoints { .. } => "missing_endpoints",
            TableError::Invalid { .. } => "invalid_routes",
        }
    }
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> TableError {
    TableError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

impl RouteTable {
    /// Checks every rule the data plane relies on; the control plane may call it before sending.
    pub fn validate(&self) -> Result<(), TableError> {
        for (name, svc) in &self.services {
            svc.validate(name)?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if !route.path_prefix.starts_with('/') {
                return Err(invalid(at, "path_prefix must start with '/'"));
            }
            if route.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
                return Err(invalid(at, "host must be non-empty or null"));
            }
            if !self.services.contains_key(&route.service) {
                return Err(invalid(at, format!("unknown service '{}'", route.service)));
            }
        }
        Ok(())
    }
}

impl ServiceSpec {
    fn validate(&self, service: &str) -> Result<(), TableError> {
        let mut names = BTreeSet::new();
        let mut sum: u64 = 0;
        for (i, v) in self.versions.iter().enumerate() {
            let at = format!("services.{service}.versions[{i}]");
            if v.name.is_empty() || http::HeaderValue::from_str(&v.name).is_err() {
                return Err(invalid(at, "name must be non-empty printable ASCII"));
            }
            if v.version.is_empty() {
                return Err(invalid(at, "version must be non-empty"));
            }
            if !names.insert(v.name.as_str()) {
                return Err(invalid(at, format!("duplicate version name '{}'", v.name)));
            }
            if v.weight > 100 {
                return Err(invalid(at, "weight must be between 0 and 100"));
            }
            sum += u64::from(v.weight);
            if v.weight > 0 && v.endpoints.is_empty() {
                return Err(TableError::NoEndpoints {
                    service: service.to_owned(),
                    version: v.name.clone(),
                });
            }
            for (j, ep) in v.endpoints.iter().enumerate() {
                parse_endpoint(ep).map_err(|m| invalid(format!("{at}.endpoints[{j}]"), m))?;
            }
        }
        if sum != 100 && sum != 0 {
            return Err(TableError::Weights {
                service: service.to_owned(),
                sum,
            });
        }
        let at = format!("services.{service}");
        match &self.sticky {
            Some(Sticky::Header(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                return Err(invalid(
                    at,
                    format!("sticky header '{h}' is not a header name"),
                ));
            }
            Some(Sticky::Cookie(c)) if !is_cookie_name(c) => {
                return Err(invalid(
                    at,
                    format!("sticky cookie '{c}' is not a cookie name"),
                ));
            }
            _ => {}
        }
        if let Some(h) = &self.override_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(invalid(
                at,
                format!("override_header '{h}' is not a header name"),
            ));
        }
        if let Some(m) = &self.mirror {
            if !(0.0..=100.0).contains(&m.percent) {
                return Err(invalid(at, "mirror.percent must be between 0 and 100"));
            }
            let Some(target) = self.find(&m.to) else {
                return Err(invalid(
                    at,
                    format!("mirror.to: unknown version '{}'", m.to),
                ));
            };
            if target.endpoints.is_empty() {
                return Err(TableError::NoEndpoints {
                    service: service.to_owned(),
                    version: target.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// A version by role name or by artifact id.
    pub(crate) fn find(&self, key: &str) -> Option<&VersionSpec> {
        self.versions
            .iter()
            .find(|v| v.name == key)
            .or_else(|| self.versions.iter().find(|v| v.version == key))
    }
}

/// `host:port` with an explicit port (no scheme, no path): what the connection pool dials.
pub(crate) fn parse_endpoint(ep: &str) -> Result<http::uri::Authority, String> {
    let auth: http::uri::Authority = ep.parse().map_err(|_| format!("'{ep}' is not host:port"))?;
    if auth.port_u16().is_none() || auth.as_str().contains('@') {
        return Err(format!("'{ep}' must be host:port"));
    }
    Ok(auth)
}

fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> RouteTable {
        serde_json::from_str(
            r#"{ "generation": 7,
              "services": { "shop/production": {
                "versions": [
                  {"name":"stable","version":"sha256:ab12","weight":90,"endpoints":["127.0.0.1:4001","127.0.0.1:4002"]},
                  {"name":"canary","version":"sha256:cd34","weight":10,"endpoints":["127.0.0.1:4003"]},
                  {"name":"dark","version":"sha256:ef56","weight":0,"endpoints":["127.0.0.1:4004"]} ],
                "sticky": {"cookie":"andon_bucket"},
                "override_header": "x-andon-version",
                "mirror": {"to":"dark","percent":5} } },
              "routes": [ {"host": "shop.localhost", "path_prefix": "/", "service": "shop/production"} ] }"#,
        )
        .unwrap()
    }

    #[test]
    fn the_documented_example_is_valid() {
        let t = example();
        t.validate().unwrap();
        let svc = &t.services["shop/production"];
        assert_eq!(svc.sticky, Some(Sticky::Cookie("andon_bucket".into())));
        assert_eq!(svc.mirror.as_ref().unwrap().percent, 5.0);
    }

    #[test]
    fn weights_must_add_up_to_100() {
        let mut t = example();
        t.services.get_mut("shop/production").unwrap().versions[1].weight = 20;
        let e = t.validate().unwrap_err();
        assert_eq!(e.code(), "invalid_weights");
    }

    #[test]
    fn all_dark_is_allowed() {
        let mut t = example();
        for v in &mut t.services.get_mut("shop/production").unwrap().versions {
            v.weight = 0;
        }
        t.validate().unwrap();
    }

    #[test]
    fn weighted_version_needs_endpoints() {
        let mut t = example();
        t.services.get_mut("shop/production").unwrap().versions[1]
            .endpoints
            .clear();
        assert_eq!(t.validate().unwrap_err().code(), "missing_endpoints");
    }

    #[test]
    fn endpoints_need_a_port_and_routes_a_known_service() {
        let mut t = example();
        t.services.get_mut("shop/production").unwrap().versions[0].endpoints[0] =
            "127.0.0.1".into();
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("endpoints[0]")
        );
        let mut t = example();
        t.routes[0].service = "nope".into();
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("unknown service")
        );
    }

    #[test]
    fn override_header_defaults_and_null_disables() {
        let t: ServiceSpec = serde_json::from_str(r#"{"versions":[]}"#).unwrap();
        assert_eq!(t.override_header.as_deref(), Some(DEFAULT_OVERRIDE_HEADER));
        let t: ServiceSpec =
            serde_json::from_str(r#"{"versions":[],"override_header":null}"#).unwrap();
        assert_eq!(t.override_header, None);
    }
}
