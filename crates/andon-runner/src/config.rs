//! From the checked `andon.yaml` model to what the runner runs.

use andon_config::Pipeline;

use crate::spec::JobSpec;

/// Every job of `pipeline`, stage by stage in file order (the plan order),
/// with its effective dependencies. Filter by branch first
/// (`Config::pipeline_for_branch`): `when:` is not looked at here.
pub fn jobs_from_config(pipeline: &Pipeline) -> Vec<JobSpec> {
    pipeline
        .stages
        .iter()
        .flat_map(|stage| {
            stage.jobs.iter().map(move |j| JobSpec {
                name: j.name.clone(),
                stage: stage.name.clone(),
                kind: stage.kind.map(|k| k.as_str().to_owned()),
                run: j.run.clone(),
                deps: j.deps.clone(),
                env: j.env.clone(),
                secrets: j.secrets.clone(),
                timeout: j.timeout,
                retries: j.retries,
                artifacts: j.artifacts.clone(),
                allow_failure: j.allow_failure,
                image: j.image.clone(),
                sandbox: j.sandbox,
                runs_on: j.runs_on.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_become_planned_jobs_in_order() {
        let yaml = "pipeline:\n  stages:\n    - name: commit\n      kind: unit\n      jobs:\n        - name: test\n          run: cargo test\n          timeout: 10m\n          secrets: [TOKEN]\n    - name: package\n      jobs:\n        - name: build\n          run: ./build.sh\n          artifacts: [dist/app]\n          retries: 1\n";
        let config = andon_config::parse("andon.yaml", yaml).unwrap();
        let jobs = jobs_from_config(&config.pipeline_for_branch("main"));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].name, "test");
        assert_eq!(jobs[0].kind.as_deref(), Some("unit"));
        assert_eq!(jobs[0].timeout, Some(std::time::Duration::from_secs(600)));
        assert_eq!(jobs[0].secrets, ["TOKEN"]);
        assert_eq!(
            (jobs[1].stage.as_str(), jobs[1].kind.as_deref()),
            ("package", None)
        );
        assert_eq!(jobs[1].deps, ["test"]);
        assert_eq!(jobs[1].artifacts, ["dist/app"]);
        assert_eq!(jobs[1].retries, 1);
    }
}
