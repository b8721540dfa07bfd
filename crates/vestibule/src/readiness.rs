//! Readiness: whether the store and every source answer (`/readyz`), for load balancers and orchestrators that
//! should send no one to a node that cannot sign anyone in.
//!
//! Probes are not free (an LDAP connection and bind, an HTTP request to each identity provider), and the route is
//! open to anyone who can reach it, so one run of them is shared: requests within [`FRESH_FOR`] of the last run get
//! its answer, and requests arriving while a run is under way wait for it instead of starting their own. A probe
//! error is logged when a check turns red (with its cause, which may name internal hosts); the answer itself only
//! says which check is down.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Broker;

/// How long one run of the probes answers every readiness request.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Longest a single probe may take before it counts as down. Each source also bounds its own work with its
/// configured timeouts; this caps a source whose timeouts are long.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// The state of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckState {
    /// It answered.
    Up,
    /// It did not answer, or answered wrongly, within [`PROBE_DEADLINE`].
    Down,
    /// Nothing to ask (a source kept in the store, or one with no endpoint that answers without a person);
    /// counts as ready.
    NotChecked,
}

/// One source's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCheck {
    /// The source's id.
    pub id: String,
    /// What its probe said.
    pub state: CheckState,
}

/// The answer of one run of the probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The store and every source are up (or not checked).
    pub ready: bool,
    /// The store's check.
    pub store: CheckState,
    /// Every source's check, in configuration order.
    pub sources: Vec<SourceCheck>,
}

/// The last run, shared by the requests that follow it (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl Broker {
    /// Whether the store and every source answer now (within [`FRESH_FOR`]; see the module documentation).
    pub async fn readiness(&self) -> Readiness {
        // Held for the whole run: concurrent requests wait for this one's answer rather than probe again.
        let mut last = self.readiness.last.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return answer.clone();
            }
        }
        let answer = self.probe_all(last.as_ref().map(|(_, r)| r)).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn probe_all(&self, before: Option<&Readiness>) -> Readiness {
        let store = async {
            match tokio::time::timeout(PROBE_DEADLINE, self.store.ping()).await {
                Ok(Ok(())) => (CheckState::Up, None),
                Ok(Err(e)) => (CheckState::Down, Some(vestibule_core::error_chain(&e))),
                Err(_) => (CheckState::Down, Some("no answer within the deadline".to_owned())),
            }
        };
        // Every source at once (each on its own task, so one slow directory does not delay the others).
        let mut tasks = tokio::task::JoinSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let source = source.clone();
            tasks.spawn(async move {
                let (state, cause) = match source.probe() {
                    None => (CheckState::NotChecked, None),
                    Some(probe) => match tokio::time::timeout(PROBE_DEADLINE, probe.probe()).await {
                        Ok(Ok(())) => (CheckState::Up, None),
                        Ok(Err(e)) => (CheckState::Down, Some(vestibule_core::error_chain(&e))),
                        Err(_) => (CheckState::Down, Some("no answer within the deadline".to_owned())),
                    },
                };
                (index, source.id().to_string(), state, cause)
            });
        }
        let sources = async {
            let mut done = Vec::with_capacity(self.sources.len());
            while let Some(joined) = tasks.join_next().await {
                // A probe that panicked is a source that is not ready; its id is lost with the task, so it is
                // filled in below from the configuration.
                if let Ok(one) = joined {
                    done.push(one);
                }
            }
            let mut all: Vec<(String, CheckState, Option<String>)> = self
                .sources
                .iter()
                .map(|s| {
                    (
                        s.id().to_string(),
                        CheckState::Down,
                        Some("the probe failed".to_owned()),
                    )
                })
                .collect();
            for (index, id, state, cause) in done {
                if let Some(slot) = all.get_mut(index) {
                    *slot = (id, state, cause);
                }
            }
            all
        };
        let ((store, store_cause), sources) = tokio::join!(store, sources);
        let was = |id: Option<&str>| {
            before.and_then(|b| match id {
                None => Some(b.store),
                Some(id) => b.sources.iter().find(|s| s.id == id).map(|s| s.state),
            })
        };
        // Logged when a check changes, not at every poll: a balancer asking each second would flood the log.
        log_change("store", was(None), store, store_cause.as_deref());
        let sources: Vec<SourceCheck> = sources
            .into_iter()
            .map(|(id, state, cause)| {
                log_change(&id, was(Some(&id)), state, cause.as_deref());
                SourceCheck { id, state }
            })
            .collect();
        let ready = store == CheckState::Up && sources.iter().all(|s| s.state != CheckState::Down);
        Readiness { ready, store, sources }
    }
}

fn log_change(check: &str, before: Option<CheckState>, now: CheckState, cause: Option<&str>) {
    if before == Some(now) {
        return;
    }
    match now {
        CheckState::Down => tracing::warn!(check, cause = cause.unwrap_or(""), "readiness: down"),
        CheckState::Up if before == Some(CheckState::Down) => tracing::info!(check, "readiness: up again"),
        _ => {}
    }
}
