//! Rolling: replace instances a batch at a time (`max_unavailable`, at
//! least one), starting the new ones before taking old ones out so capacity
//! never drops. Traffic follows the instance counts: with 1 of 3 replaced,
//! the new version gets 33%.

use crate::env::EnvState;
use crate::groups::role;
use crate::release::{Halt, Release, first};
use crate::routes::{NEXT, Role, STABLE};

/// Percent of traffic for `new` of `total` instances.
fn share(new: usize, total: usize) -> u32 {
    if total == 0 {
        return 100;
    }
    u32::try_from((new * 100 + total / 2) / total)
        .unwrap_or(100)
        .min(100)
}

pub(super) async fn run(
    rel: &mut Release,
    st: &mut EnvState,
    max_unavailable: u32,
) -> Result<(), Halt> {
    if st.stable.is_none() {
        return first(rel, st).await;
    }
    let n = rel.n();
    let batch = usize::try_from(max_unavailable.max(1)).unwrap_or(1).min(n);
    let nx = rel.add_group(NEXT, rel.req.version, rel.launch.clone());
    let mut smoked = false;
    while rel.group(nx).instances.len() < n {
        rel.checkpoint()?;
        if rel.ctl_rx.borrow().paused {
            rel.hold(std::time::Duration::ZERO).await?;
        }
        let k = batch.min(n - rel.group(nx).instances.len());
        rel.grow(&[(nx, k)]).await?;
        let Some(old) = st.stable.as_mut() else { break };
        if !smoked {
            let roles = [role(STABLE, old, 100), role(NEXT, rel.group(nx), 0)];
            rel.publish(&roles).await?;
            rel.smoke(NEXT, nx).await?;
            smoked = true;
        }
        let take = k.min(old.instances.len());
        let removed: Vec<_> = old.instances.drain(..take).collect();
        let new_w = if old.instances.is_empty() {
            100
        } else {
            share(rel.group(nx).instances.len(), n).min(99)
        };
        let mut roles: Vec<Role> = Vec::new();
        if !old.instances.is_empty() {
            roles.push(role(STABLE, old, 100 - new_w));
        }
        roles.push(role(NEXT, rel.group(nx), new_w));
        let published = rel.publish(&roles).await;
        let old_version = old.version;
        let why = format!("replaced by deploy {}", rel.req.deploy_id);
        // The role stays live, so this is a short grace, then SIGTERM.
        rel.inner
            .retire(
                &rel.slot.service,
                &[(STABLE, old_version)],
                vec![crate::env::Group {
                    instances: removed,
                    ..old.clone()
                }],
                &why,
            )
            .await;
        published?;
    }
    rel.publish(&[role(STABLE, rel.group(nx), 100)]).await?;
    let old = st.stable.replace(rel.take(nx));
    if let Some(old) = old
        && !old.instances.is_empty()
    {
        let why = format!("replaced by deploy {}", rel.req.deploy_id);
        rel.inner
            .retire(&rel.slot.service, &[(STABLE, old.version)], vec![old], &why)
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn traffic_follows_instance_counts() {
        assert_eq!(share(1, 3), 33);
        assert_eq!(share(2, 3), 67);
        assert_eq!(share(3, 3), 100);
        assert_eq!(share(0, 0), 100);
    }
}
