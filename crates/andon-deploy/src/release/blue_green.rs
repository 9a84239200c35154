//! Blue/green: start green fully beside blue, smoke-test it through the
//! router while it is dark, switch all traffic in one route update, and
//! keep blue running (dark) for the rollback window.

use std::time::Duration;

use crate::env::{EnvState, Warm};
use crate::groups::role;
use crate::release::{Halt, Held, Release, first};
use crate::routes::{GREEN, PREVIOUS, STABLE};

pub(super) async fn run(
    rel: &mut Release,
    st: &mut EnvState,
    smoke_for: Option<Duration>,
) -> Result<(), Halt> {
    let Some(blue) = st.stable.clone() else {
        return first(rel, st).await;
    };
    let n = rel.n();
    let g = rel.add_group(GREEN, rel.req.version, rel.launch.clone());
    rel.grow(&[(g, n)]).await?;
    rel.checkpoint()?;
    rel.publish(&[role(STABLE, &blue, 100), role(GREEN, rel.group(g), 0)])
        .await?;
    rel.smoke(GREEN, g).await?;
    if let Some(d) = smoke_for
        && rel.hold(d).await? == Held::Promoted
    {
        tracing::info!(environment = %rel.slot.service, "promoted before the end of smoke_for");
    }
    rel.checkpoint()?;
    let window = rel.env().rollback_window;
    if window.is_zero() {
        rel.publish(&[role(STABLE, rel.group(g), 100)]).await?;
    } else {
        rel.publish(&[role(PREVIOUS, &blue, 0), role(STABLE, rel.group(g), 100)])
            .await?;
    }
    st.stable = Some(rel.take(g));
    if window.is_zero() {
        let keys = [(STABLE, blue.version), (PREVIOUS, blue.version)];
        let why = format!("replaced by deploy {}", rel.req.deploy_id);
        rel.inner
            .retire(&rel.slot.service, &keys, vec![blue], &why)
            .await;
    } else {
        let timer = crate::rollback::schedule_warm_end(
            rel.inner.clone(),
            rel.slot.clone(),
            window,
            rel.req.deploy_id,
        );
        st.warm = Some(Warm {
            group: blue,
            timer: Some(timer),
            until_deploy: rel.req.deploy_id,
        });
    }
    Ok(())
}
