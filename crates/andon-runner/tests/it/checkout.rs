//! Runs build a clean checkout of the exact commit, never the user's tree.

use andon_core::RunStatus;
use andon_runner::git;

use crate::helpers::{Fixture, Repo, job};

#[tokio::test]
async fn a_run_sees_the_exact_commit_and_leaves_the_users_tree_alone() {
    let repo = Repo::new();
    let first = repo.commit("app.txt", "v1\n", "first");
    let second = repo.commit("app.txt", "v2\n", "second\n\nbody");
    // The user is mid-work: a modified tracked file and an untracked one.
    std::fs::write(repo.path().join("app.txt"), "dirty\n").unwrap();
    std::fs::write(repo.path().join("scratch.txt"), "mine\n").unwrap();
    let status_before = repo.git(&["status", "--porcelain"]);

    assert_eq!(git::head(repo.path()).unwrap(), second);
    assert_eq!(git::resolve(repo.path(), "HEAD~1").unwrap(), first);
    assert_eq!(git::resolve(repo.path(), &first[..8]).unwrap(), first);
    assert!(
        git::resolve(repo.path(), "no-such-branch")
            .unwrap_err()
            .to_string()
            .contains("no commit named")
    );
    assert_eq!(git::branch(repo.path()).unwrap(), "main");
    let info = git::commit_info(repo.path(), &second).unwrap();
    assert_eq!(info.message, "second\n\nbody");
    assert_eq!(info.author, "Ada <ada@example.com>");
    assert!(info.time_ms > 1_600_000_000_000);

    let fx = Fixture::new();
    let dest = fx.dir.path().join("checkouts/run-1");
    let co = git::checkout(repo.path(), &first, &dest).unwrap();
    assert_eq!(co.commit(), first);
    let mut spec = fx.spec(vec![job(
        "look",
        "cat app.txt; test -e scratch.txt && echo SAW-SCRATCH; git rev-parse HEAD; echo changed > app.txt; touch new.txt; git commit -qam 'job commit' --no-verify -c user.name=x 2>/dev/null; git -c user.name=x -c user.email=x@y commit -qam job; true",
    )]);
    spec.checkout = co.path().to_owned();
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Passed);
    let log = rec.log_of("look");
    assert!(log.starts_with("v1\n"), "{log}");
    assert!(!log.contains("SAW-SCRATCH"));
    assert!(log.contains(&first));

    // The user's tree, index and refs are as they were.
    assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("app.txt")).unwrap(),
        "dirty\n"
    );
    assert!(!repo.path().join("new.txt").exists());
    assert_eq!(git::head(repo.path()).unwrap(), second);
    assert_eq!(repo.git(&["branch", "--list"]), "* main");

    // Inside the checkout HEAD is detached at the commit.
    assert!(matches!(
        git::branch(co.path()),
        Err(git::GitError::DetachedHead { .. })
    ));
    co.remove().unwrap();
    assert!(!dest.exists());
}

#[test]
fn checkouts_clean_up_after_themselves_and_stale_ones_are_pruned() {
    let repo = Repo::new();
    let c = repo.commit("a", "1", "one");
    let parent = tempfile::tempdir().unwrap();
    {
        let co = git::checkout(repo.path(), &c, &parent.path().join("x")).unwrap();
        assert!(co.path().join("a").exists());
    }
    assert!(!parent.path().join("x").exists(), "removed on drop");

    // A crash leaves one behind; something else lives there too.
    let leaked = git::checkout(repo.path(), &c, &parent.path().join("stale")).unwrap();
    std::mem::forget(leaked);
    std::fs::create_dir_all(parent.path().join("not-ours/.git")).unwrap();
    assert!(
        git::checkout(repo.path(), &c, &parent.path().join("stale")).is_err(),
        "destination exists"
    );
    assert_eq!(git::prune_checkouts(parent.path()).unwrap(), 1);
    assert!(!parent.path().join("stale").exists());
    assert!(parent.path().join("not-ours").exists());

    assert!(
        git::checkout(
            repo.path(),
            "0000000000000000000000000000000000000000",
            &parent.path().join("y")
        )
        .is_err()
    );
    assert!(!parent.path().join("y").exists());
}
