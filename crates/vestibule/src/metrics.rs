//! Metrics through the [`metrics`] facade: the broker records, and whoever installs a recorder (the `vestibule`
//! server's Prometheus exporter on `[metrics] bind`) collects. Without a recorder each call is a no-op costing an
//! atomic load, so an embedding app that does not want metrics pays nothing for them.
//!
//! Labels are chosen from fixed sets or configuration (source ids, event names, throttle layers), never from what
//! a request carries, so a client cannot grow the number of series.

use std::time::Duration;

use vestibule_core::storage::AuditKind;
use vestibule_core::{SourceError, SourceId};

/// Every audit event, by name; sign-ins also by source and result.
pub(crate) fn audited(kind: AuditKind, source: Option<&str>) {
    metrics::counter!("vestibule_audit_events_total", "event" => kind.as_str()).increment(1);
    let result = match kind {
        AuditKind::LoginSuccess => "success",
        AuditKind::LoginFailure => "failure",
        _ => return,
    };
    metrics::counter!(
        "vestibule_sign_ins_total",
        "source" => source.unwrap_or("").to_owned(),
        "result" => result
    )
    .increment(1);
}

/// A notification hook of the embedding app that failed, by hook name (see [`crate::BrokerHooks`]).
pub(crate) fn hook_failed(hook: &'static str) {
    metrics::counter!("vestibule_hook_failures_total", "hook" => hook).increment(1);
}

/// An attempt refused by the throttle, by the layer that refused it.
pub(crate) fn throttled(layer: crate::ThrottleLayer) {
    metrics::counter!("vestibule_throttle_refusals_total", "layer" => layer.as_str()).increment(1);
}

/// One call to a source (an LDAP bind and search, an identity provider's token endpoint...): its time and how it
/// ended (`ok`, `rejected`: the source said no; `unavailable`: it could not answer; `error`: a protocol error).
pub(crate) fn source_call<T>(source: &SourceId, step: &'static str, result: &Result<T, SourceError>, took: Duration) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(SourceError::Rejected(_)) => "rejected",
        Err(SourceError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    };
    let source = source.as_str().to_owned();
    metrics::counter!(
        "vestibule_source_calls_total",
        "source" => source.clone(),
        "step" => step,
        "outcome" => outcome
    )
    .increment(1);
    metrics::histogram!("vestibule_source_call_seconds", "source" => source, "step" => step).record(took.as_secs_f64());
}
