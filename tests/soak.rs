//! The soak in short (tests/soak/run, docs/SOAK.md): six agents on two clones of a smart-HTTP
//! remote work for two minutes while commands are killed and the server goes away. Only the
//! verdict's counts are checked, never a time, so a slow machine cannot fail it.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_two_minute_soak_loses_nothing_and_converges() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is missing, and the soak harness (tests/soak/run) needs it");
        return;
    }
    let run = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soak/run");
    // stale_after stays well above the outage (6 s), so that slowness alone never makes a live
    // agent stale; the seed fixes the fault schedule.
    let output = Command::new("python3")
        .arg(run)
        .args([
            "--minutes",
            "2",
            "--agents",
            "6",
            "--clones",
            "2",
            "--seed",
            "34",
        ])
        .args(["--stale-after", "30"])
        .args(["--bin", env!("CARGO_BIN_EXE_git-coord")])
        .output()
        .expect("python3 runs the soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let verdict: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("the soak's last line is not its JSON verdict ({e}):\n{stdout}\n{stderr}")
    });
    let count = |key: &str| {
        verdict[key]
            .as_u64()
            .unwrap_or_else(|| panic!("verdict has no count {key}: {verdict}"))
    };
    for key in ["lost", "double", "stuck", "fsck_failures", "divergent_refs"] {
        assert_eq!(count(key), 0, "{key} must be 0:\n{stdout}\n{stderr}");
    }
    assert!(count("tasks_created") > 0, "no task was created:\n{stdout}");
    assert!(count("done_reports") > 0, "no task was done:\n{stdout}");
    assert!(count("messages_sent") > 0, "no message was sent:\n{stdout}");
    assert_eq!(
        count("messages_at_remote"),
        count("messages_sent"),
        "{stdout}"
    );
    assert_eq!(verdict["ok"], Value::Bool(true), "{stdout}");
    assert!(
        output.status.success(),
        "the soak failed:\n{stdout}\n{stderr}"
    );
}
