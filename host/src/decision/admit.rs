//! Admission: a call's decisions are admitted, or refused, before any of
//! them runs. A refusal is only arithmetic on in-memory counters (plus one
//! audit event per episode), so a tenant flooding past its limits never
//! occupies a thread that others' decisions need.

use std::time::Duration;

use crate::gates::{Gates, Permit};

use super::{Decider, DecisionError};

impl Decider {
    /// Admits `decisions` decisions for tenant `tenant_id`: the rate
    /// limit, the running-evaluation cap and the monthly budget; a tenant
    /// whose trial ended is refused until its plan changes. The first
    /// refusal of an episode is written to the tenant's audit log; the
    /// refusals that follow it until the tenant is admitted again are only
    /// counted. A suspended tenant is not limited: its decisions are
    /// denies anyway.
    ///
    /// A refusal is answered after `refusal_delay` (at most its
    /// `Retry-After`), jittered, so that a flood's connections, refused
    /// together, do not come back together.
    pub async fn admit(
        &self,
        tenant_id: &str,
        decisions: usize,
        actor: &str,
    ) -> Result<Permit, DecisionError> {
        let refusal = match self.admit_now(tenant_id, decisions, actor) {
            Err(DecisionError::Refused { refusal }) => refusal,
            other => return other,
        };
        let pause = self
            .schedule
            .refusal_delay
            .min(Duration::from_secs(refusal.retry_after_secs))
            .mul_f64(rand::random_range(0.5..=1.0));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Err(DecisionError::Refused { refusal })
    }

    /// [`Decider::admit`] without the pause before a refusal.
    pub fn admit_now(
        &self,
        tenant_id: &str,
        decisions: usize,
        actor: &str,
    ) -> Result<Permit, DecisionError> {
        let view = self
            .registry
            .tenant_view(tenant_id)
            .ok_or_else(|| DecisionError::TenantNotFound(tenant_id.to_string()))?;
        // More decisions in one call than the tenant's burst can never be
        // admitted, however long the client waits: a client mistake, not
        // a refusal to retry.
        if decisions > 1 && decisions > view.settings.burst as usize {
            return Err(DecisionError::BatchExceedsBurst {
                asked: decisions,
                burst: view.settings.burst,
            });
        }
        if view.record.status == ward_types::TenantStatus::Suspended {
            return Ok(Gates::unlimited());
        }
        if let Some(first_of_episode) = self.registry.billing_required(&view) {
            let plan = view.record.plan.clone().unwrap_or_default();
            if first_of_episode {
                let details = serde_json::json!({
                    "plan": plan,
                    "trial_ends_at": view.record.trial_ends_at,
                });
                self.audit
                    .queue_event(
                        &view.record.id,
                        actor,
                        ward_types::AuditKind::BillingRequired,
                        details,
                    )
                    .map_err(DecisionError::Audit)?;
            }
            return Err(DecisionError::BillingRequired { plan });
        }
        let count = u32::try_from(decisions).unwrap_or(u32::MAX);
        let refusal = match self.gates.admit(&view.record.id, &view.settings, count) {
            Ok(permit) => return Ok(permit),
            Err(refusal) => refusal,
        };
        if refusal.first_of_episode {
            let details = serde_json::json!({"retry_after_secs": refusal.retry_after_secs});
            // Queued like a decision: this runs on the async worker,
            // which must not wait for the disk.
            self.audit
                .queue_event(&view.record.id, actor, refusal.reason.audit_kind(), details)
                .map_err(DecisionError::Audit)?;
        }
        Err(DecisionError::Refused { refusal })
    }

    /// This month's usage of a tenant and its limits.
    pub fn usage(&self, tenant_id: &str) -> Result<ward_types::Usage, DecisionError> {
        let view = self
            .registry
            .tenant_view(tenant_id)
            .ok_or_else(|| DecisionError::TenantNotFound(tenant_id.to_string()))?;
        Ok(self.gates.usage(&view.record.id, &view.settings))
    }
}
