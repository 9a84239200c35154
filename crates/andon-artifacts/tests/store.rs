//! The store's promises, checked on a real filesystem.

// Helpers outside #[test] fns unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use andon_artifacts::{ArtifactStore, Digest, Error};

fn write(path: &Path, contents: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn blob_count(store: &ArtifactStore) -> usize {
    store.digests().unwrap().len()
}

#[test]
fn a_file_round_trips_with_its_name_and_exec_bit() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    write(&src.path().join("dist/app"), "#!/bin/sh\necho hi\n", 0o750);

    let digest = store
        .put_path_as(&src.path().join("dist/app"), "dist/app")
        .unwrap();
    let blob = store.get_path(&digest).unwrap();
    let hex = digest.hex();
    assert_eq!(
        blob,
        data.path().join("sha256").join(&hex[..2]).join(&hex[2..])
    );
    assert_eq!(store.verify(&digest).unwrap(), store.size(&digest).unwrap());
    assert_eq!(store.list(&digest).unwrap(), vec!["dist/app".to_string()]);

    let out = tempfile::tempdir().unwrap();
    store.extract_to(&digest, out.path()).unwrap();
    let got = out.path().join("dist/app");
    assert_eq!(fs::read_to_string(&got).unwrap(), "#!/bin/sh\necho hi\n");
    assert_ne!(fs::metadata(&got).unwrap().permissions().mode() & 0o111, 0);

    // put_path uses the file's own name.
    let d2 = store.put_file(&src.path().join("dist/app")).unwrap();
    assert_eq!(store.list(&d2).unwrap(), vec!["app".to_string()]);
}

#[test]
fn identical_trees_give_identical_digests_whatever_their_times_and_modes() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // Same content, created in a different order, with different
    // non-executable modes: the digest must not care.
    write(&a.path().join("out/z.txt"), "z", 0o644);
    write(&a.path().join("out/sub/a.txt"), "a", 0o600);
    write(&a.path().join("out/run.sh"), "x", 0o755);
    std::os::unix::fs::symlink("z.txt", a.path().join("out/link")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&b.path().join("out/run.sh"), "x", 0o700);
    write(&b.path().join("out/sub/a.txt"), "a", 0o664);
    write(&b.path().join("out/z.txt"), "z", 0o640);
    std::os::unix::fs::symlink("z.txt", b.path().join("out/link")).unwrap();

    let da = store.put_path(&a.path().join("out")).unwrap();
    let db = store.put_path(&b.path().join("out")).unwrap();
    assert_eq!(da, db);
    assert_eq!(blob_count(&store), 1, "deduplicated");
    assert_eq!(
        store.list(&da).unwrap(),
        vec![
            "out/",
            "out/link",
            "out/run.sh",
            "out/sub/",
            "out/sub/a.txt",
            "out/z.txt"
        ]
    );

    // A change in content or in the exec bit changes the digest.
    write(&b.path().join("out/z.txt"), "Z", 0o640);
    assert_ne!(store.put_path(&b.path().join("out")).unwrap(), da);
    write(&b.path().join("out/z.txt"), "z", 0o750);
    assert_ne!(store.put_path(&b.path().join("out")).unwrap(), da);

    let out = tempfile::tempdir().unwrap();
    store.extract_to(&da, out.path()).unwrap();
    assert_eq!(
        fs::read_link(out.path().join("out/link")).unwrap(),
        Path::new("z.txt")
    );
    assert_eq!(
        fs::read_to_string(out.path().join("out/sub/a.txt")).unwrap(),
        "a"
    );
}

#[test]
fn corrupted_blobs_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let digest = store.put_bytes_as("app", b"the real bytes").unwrap();
    let blob = store.get_path(&digest).unwrap();
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    bytes[520] ^= 1; // inside the file's data, after the 512-byte header
    fs::write(&blob, bytes).unwrap();

    assert!(matches!(
        store.verify(&digest),
        Err(Error::DigestMismatch { .. })
    ));
    assert!(matches!(
        store.open_blob(&digest),
        Err(Error::DigestMismatch { .. })
    ));
    let out = tempfile::tempdir().unwrap();
    let err = store
        .extract_to(&digest, &out.path().join("x"))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        !out.path().join("x").exists(),
        "nothing written before verification"
    );
}

#[test]
fn missing_things_are_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let absent = Digest::of(b"never stored");
    assert!(!store.has(&absent));
    assert!(store.get_path(&absent).is_none());
    assert!(matches!(store.open_blob(&absent), Err(Error::NotFound(_))));
    let err = store.put_path(&data.path().join("nope")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("nope"), "{err}");
    for bad in ["", "../x", "/etc/passwd", "a/../../b", "."] {
        assert!(
            matches!(store.put_bytes_as(bad, b"x"), Err(Error::InvalidName(_))),
            "{bad}"
        );
    }
    // `./dist` and `dist` are the same artifact.
    assert_eq!(
        store.put_bytes_as("./dist/a", b"x").unwrap(),
        store.put_bytes_as("dist/a", b"x").unwrap()
    );
}

#[test]
fn concurrent_puts_of_the_same_content_agree() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    for i in 0..50 {
        write(
            &src.path().join(format!("tree/f{i}")),
            &"x".repeat(i * 100),
            0o644,
        );
    }
    let store = ArtifactStore::open(data.path()).unwrap();
    let digests: Vec<Digest> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.put_path(&src.path().join("tree")).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(blob_count(&store), 1);
    store.verify(&digests[0]).unwrap();
    // No temporary files left behind.
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_blob_moved_between_stores_keeps_its_digest() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("dist/app"), "bin", 0o755);
    let store_a = ArtifactStore::open(a.path()).unwrap();
    let digest = store_a
        .put_path_as(&src.path().join("dist"), "dist")
        .unwrap();
    let bytes = fs::read(store_a.get_path(&digest).unwrap()).unwrap();

    let store_b = ArtifactStore::open(b.path()).unwrap();
    assert_eq!(store_b.put_bytes(&bytes).unwrap(), digest);
    let mut tampered = bytes.clone();
    tampered[600] ^= 1;
    assert_ne!(store_b.put_bytes(&tampered).unwrap(), digest);
    let out = tempfile::tempdir().unwrap();
    store_b.extract_to(&digest, out.path()).unwrap();
    assert_eq!(
        fs::read_to_string(out.path().join("dist/app")).unwrap(),
        "bin"
    );
}
