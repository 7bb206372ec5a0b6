//! `rsdos status` reports the automatic packer.

use std::process::Command;

fn rsdos(path: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .arg("-p")
        .arg(path)
        .args(args)
        .output()
        .expect("run rsdos")
}

#[test]
fn status_shows_the_packer_before_and_after_a_daemon_round() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    assert!(rsdos(&store, &["init"]).status.success());
    let out = rsdos(&store, &["status", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"packer\": null"), "{text}");
    let human = String::from_utf8_lossy(&rsdos(&store, &["status"]).stdout).into_owned();
    assert!(human.contains("Packer:       none"), "{human}");

    let file = dir.path().join("f.txt");
    std::fs::write(&file, b"hello packer").expect("write");
    assert!(
        rsdos(&store, &["add", file.to_str().expect("utf8")])
            .status
            .success()
    );
    let daemon = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["daemon", "--once", "--max-loose", "1"])
        .arg(&store)
        .output()
        .expect("daemon");
    assert!(
        daemon.status.success(),
        "{}",
        String::from_utf8_lossy(&daemon.stderr)
    );
    let text = String::from_utf8_lossy(&rsdos(&store, &["status", "--json"]).stdout).into_owned();
    assert!(text.contains("\"active\": false"), "{text}");
    assert!(text.contains("\"objects_packed\": 1"), "{text}");
    assert!(
        !text.contains("\"stopped\": null"),
        "a clean stop is recorded: {text}"
    );
    let human = String::from_utf8_lossy(&rsdos(&store, &["status"]).stdout).into_owned();
    assert!(human.contains("Packer:       stopped"), "{human}");
}
