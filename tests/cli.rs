//! The CLI end to end: synth -> fit -> score -> eval --json.
mod common;

use std::process::Command;

use common::*;

fn nexvitad() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nexvitad"));
    c.env("NEXVITAD_ORT_LIBRARY", ort_library()).env("NEXVITAD_MODEL", tiny_model_dir());
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", c, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn synth_fit_score_eval() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let s = ok(nexvitad().args(["synth", "--size", "128", "--domains", "grain", "--out"]).arg(&data));
    assert!(s.contains("grain"), "{s}");
    let bank = t.path().join("grain.bank");
    let s = ok(nexvitad()
        .args(["fit", "--shots", "3", "--k", "10", "--images"])
        .arg(data.join("grain/train/good"))
        .arg("--out")
        .arg(&bank));
    assert!(s.contains("10 sinkhorn vectors"), "{s}");
    let heat = t.path().join("heat");
    let s = ok(nexvitad().args(["score", "--json", "--bank"]).arg(&bank).arg("--heatmaps").arg(&heat).arg(data.join("grain/test/spot")));
    let rows: Vec<serde_json::Value> = s.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r["score"].as_f64().unwrap() > 0.0 && r["threshold"].is_number() && r["anomalous"].is_boolean(), "{r}");
        assert_eq!(r["width"], 128);
    }
    assert_eq!(std::fs::read_dir(&heat).unwrap().count(), rows.len());
    let s = ok(nexvitad()
        .args(["eval", "--json", "--shots", "3", "--k", "10", "--category", "grain", "--data"])
        .arg(&data));
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    for key in ["image_auroc", "pixel_auroc", "pixel_ap", "pro", "f1_max", "images", "shots", "k", "scorer", "encode_ms", "score_ms"] {
        assert!(!v[key].is_null(), "missing {key} in {v}");
    }
    let auc = v["pixel_auroc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    assert_eq!(v["shots"], 3);
}

#[test]
fn cli_errors_are_one_clear_line() {
    let out = nexvitad().args(["fit", "--images", "/nonexistent/dir", "--out", "/tmp/x.bank"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("nexvitad: error:") && err.contains("/nonexistent/dir"), "{err}");
    let out = nexvitad().args(["fit", "--scorer", "magic", "--images", "tests/fixtures/images", "--out", "/tmp/x.bank"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown scorer 'magic'"), "{err}");
}
