//! Recreate: stop the old version, start the new one, switch. Users get
//! `503` from the router in between: that is what this strategy means, and
//! why it is only the default for environments nobody depends on.

use crate::env::EnvState;
use crate::release::{Halt, Release, first};
use crate::routes::STABLE;

pub(super) async fn run(rel: &mut Release, st: &mut EnvState) -> Result<(), Halt> {
    if let Some(old) = st.stable.clone() {
        // All dark: the router answers 503 `no_version` until the new one is up.
        rel.publish(&[]).await?;
        st.stable = None;
        rel.previous = Some((old.version, old.launch.clone()));
        let why = format!("recreated by deploy {}", rel.req.deploy_id);
        rel.inner
            .retire(&rel.slot.service, &[(STABLE, old.version)], vec![old], &why)
            .await;
    }
    rel.checkpoint()?;
    first(rel, st).await
}
