//! The `nexvitad` command line end to end: synth -> fit -> score -> eval --json, errors as a
//! user sees them, `info`, and how ONNX Runtime is found.
#[path = "../../tests/common/mod.rs"]
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
    // Unset means the model's default; a value outside the range is named, with how to get
    // the default, on one line.
    for (flag, value, want) in [
        ("--k", "0", "k must be > 0 (leave it unset for the model's default, 30)"),
        ("--sigma", "-1", "sigma -1 must be >= 0 (leave it unset for the model's default, 4 px)"),
        ("--target-fpr", "0", "target_fpr 0 must be in (0, 1) (leave it unset for the model's default, 0.01)"),
    ] {
        let out = nexvitad().args(["fit", "--shots", "3", flag, value, "--images"]).arg(data.join("grain/train/good")).arg("--out").arg(t.path().join("x.bank")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim_end().lines().count() == 1 && err.contains(want), "{flag} {value}: {err}");
        assert!(!t.path().join("x.bank").exists());
    }
    let moved = t.path().join("moved.bank");
    let s = ok(nexvitad().args(["bank", "calibrate", "--fpr", "0.1", "--bank"]).arg(&bank).arg("--out").arg(&moved));
    assert!(s.contains("target FPR 0.01 -> 0.1"), "{s}");
    let out = nexvitad().args(["bank", "calibrate", "--fpr", "2", "--bank"]).arg(&bank).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("target_fpr 2 must be in (0, 1)"));
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
fn fit_score_and_eval_with_tiles() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(nexvitad().args(["synth", "--size", "160", "--domains", "weave", "--out"]).arg(&data));
    let bank = t.path().join("weave.bank");
    let s = ok(nexvitad()
        .args(["fit", "--shots", "2", "--k", "6", "--max-iters", "5", "--tile", "96", "--tile-overlap", "0.25", "--tile-bank", "per_position", "--images"])
        .arg(data.join("weave/train/good"))
        .arg("--out")
        .arg(&bank));
    assert!(s.contains("in 96x96 tiles (overlap 0.25, a bank per position: 2x2 tiles of 160x160 images)"), "{s}");
    assert!(s.contains("24 sinkhorn vectors"), "{s}");
    let s = ok(nexvitad().args(["score", "--json", "--bank"]).arg(&bank).arg(data.join("weave/test/spot")));
    for l in s.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(160), Some(160)), "{r}");
    }
    let s = ok(nexvitad()
        .args(["eval", "--json", "--shots", "2", "--k", "6", "--max-iters", "5", "--tile", "96", "--category", "weave", "--data"])
        .arg(&data));
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    assert!(v["pixel_auroc"].as_f64().is_some(), "{v}");
    for (args, want) in [
        (vec!["--tile", "96", "--tile-overlap", "1"], "tile overlap 1 must be in [0, 1)"),
        (vec!["--tile", "96", "--tile-bank", "grid"], "unknown tile bank layout 'grid'"),
        (vec!["--tile", "400"], "images[0]: tile 400x400 is larger than the 160x160 image"),
    ] {
        let out = nexvitad().args(["fit", "--images"]).arg(data.join("weave/train/good")).args(["--out"]).arg(t.path().join("x.bank")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn roi_regions_and_growing_banks() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(nexvitad().args(["synth", "--size", "96", "--domains", "serial", "--train-good", "4", "--test-good", "2", "--out"]).arg(&data));
    let good = data.join("serial/train/good");
    let mut files: Vec<_> = std::fs::read_dir(&good).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let roi = data.join("serial/roi.png");
    // A growable bank with the ROI, grown by two images and merged: both equal the build on all four.
    let b = |name: &str| t.path().join(name);
    let fit = |imgs: &[std::path::PathBuf], out: &std::path::Path| {
        ok(nexvitad().args(["fit", "--k", "6", "--max-iters", "5", "--growable", "--roi"]).arg(&roi).arg("--out").arg(out).arg("--images").args(imgs))
    };
    fit(&files[..4], &b("all.bank"));
    fit(&files[..2], &b("a.bank"));
    fit(&files[2..4], &b("b.bank"));
    let s = ok(nexvitad().args(["bank", "add", "--bank"]).arg(b("a.bank")).arg("--out").arg(b("added.bank")).arg("--images").args(&files[2..4]));
    assert!(s.contains("2 + 2 images = 4 shots"), "{s}");
    let s = ok(nexvitad().args(["bank", "merge"]).arg(b("a.bank")).arg(b("b.bank")).arg("--out").arg(b("merged.bank")));
    assert!(s.contains("2 + 2 images = 4 shots"), "{s}");
    let score = |bank: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let s = ok(nexvitad().args(["score", "--json", "--regions", "--bank"]).arg(b(bank)).args(extra).arg(data.join("serial/test/good")));
        s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let all = score("all.bank", &[]);
    assert_eq!(score("added.bank", &[]), all);
    assert_eq!(score("merged.bank", &[]), all);
    assert!(all.iter().all(|r| r["roi"] == "bank" && r["regions"].is_array()), "{all:?}");
    assert!(score("all.bank", &["--no-roi"]).iter().all(|r| r["roi"] == "none"));
    let roi_arg = roi.to_str().unwrap();
    assert!(score("all.bank", &["--roi", roi_arg]).iter().all(|r| r["roi"] == "caller"));
    // Errors a user sees: a bank that is not growable, banks of different k.
    ok(nexvitad().args(["fit", "--k", "6", "--max-iters", "5", "--out"]).arg(b("plain.bank")).arg("--images").args(&files[..2]));
    let out = nexvitad().args(["bank", "add", "--bank"]).arg(b("plain.bank")).arg("--images").args(&files[2..3]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("fit --growable"), "{}", String::from_utf8_lossy(&out.stderr));
    ok(nexvitad().args(["fit", "--k", "5", "--max-iters", "5", "--growable", "--roi"]).arg(&roi).arg("--out").arg(b("k5.bank")).arg("--images").args(&files[2..4]));
    let out = nexvitad().args(["bank", "merge"]).arg(b("a.bank")).arg(b("k5.bank")).arg("--out").arg(b("x.bank")).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("different k"), "{}", String::from_utf8_lossy(&out.stderr));
    // An all-black mask is refused, naming the file.
    let black = t.path().join("black.png");
    image::GrayImage::new(8, 8).save(&black).unwrap();
    let out = nexvitad().args(["fit", "--roi"]).arg(&black).arg("--out").arg(b("y.bank")).arg("--images").args(&files[..2]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("black.png") && err.contains("all zero"), "{err}");
}

#[test]
fn cli_errors_are_one_clear_line() {
    let out = nexvitad().args(["fit", "--images", "/nonexistent/dir", "--out", "/tmp/x.bank"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("nexvitad: error:") && err.contains("/nonexistent/dir"), "{err}");
    let out = nexvitad().args(["fit", "--scorer", "magic", "--images"]).arg(root().join("tests/fixtures/images")).args(["--out", "/tmp/x.bank"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown scorer 'magic'"), "{err}");
}

fn eval_json(data: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let s = ok(nexvitad().args(["eval", "--json", "--shots", "3", "--k", "10", "--category", "grain", "--data"]).arg(data).args(extra));
    serde_json::from_str(s.trim()).unwrap()
}

fn eval_err(data: &std::path::Path) -> String {
    let out = nexvitad().args(["eval", "--shots", "3", "--k", "10", "--category", "grain", "--data"]).arg(data).output().unwrap();
    assert!(!out.status.success(), "eval on {} should fail", data.display());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.starts_with("nexvitad: error:") && err.lines().count() == 1, "{err}");
    err
}

/// `eval` on OK/NG folders (no ground_truth/), on a half-masked set, binned vs exact pixel
/// metrics, and the test sets where nothing can be computed.
#[test]
fn eval_ok_ng_folders_partial_masks_and_binned_metrics() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(nexvitad().args(["synth", "--size", "128", "--domains", "grain", "--test-good", "4", "--defects-per-type", "2", "--out"]).arg(&data));

    // With every mask: binned pixel metrics within 1e-3 of the exact ones, image metrics equal.
    let binned = eval_json(&data, &[]);
    let exact = eval_json(&data, &["--exact"]);
    assert_eq!((binned["pixel_metrics"].as_str(), exact["pixel_metrics"].as_str()), (Some("binned"), Some("exact")));
    for k in ["pixel_auroc", "pixel_ap", "pro"] {
        let (b, e) = (binned[k].as_f64().unwrap(), exact[k].as_f64().unwrap());
        assert!((b - e).abs() <= 1e-3, "{k}: binned {b} vs exact {e}");
    }
    for k in ["image_auroc", "image_ap", "f1_max", "image_accuracy"] {
        assert_eq!(binned[k], exact[k], "{k}");
        let v = binned[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!((binned["good_images"].as_u64(), binned["defective_images"].as_u64()), (Some(4), Some(8)));
    assert_eq!(binned["masked_defective"], 8);
    assert!(binned["pixel_note"].is_null());
    // Accuracy at the bank's threshold counts decisions: a multiple of 1/12.
    let acc = binned["image_accuracy"].as_f64().unwrap() * 12.0;
    assert!((acc - acc.round()).abs() < 1e-9, "{acc}");

    // Half the masks gone: pixel metrics from the rest, counted and explained.
    let gt = data.join("grain/ground_truth");
    let mut removed = 0;
    for kind in std::fs::read_dir(&gt).unwrap() {
        let kind = kind.unwrap().path();
        let mut files: Vec<_> = std::fs::read_dir(&kind).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        std::fs::remove_file(&files[0]).unwrap();
        removed += 1;
    }
    let half = eval_json(&data, &[]);
    assert_eq!(half["masked_defective"].as_u64(), Some(8 - removed));
    assert!(half["pixel_auroc"].as_f64().is_some() && half["pro"].as_f64().is_some());
    let note = half["pixel_note"].as_str().unwrap();
    assert!(note.contains(&format!("{} of 8 defective", 8 - removed)), "{note}");
    assert_eq!(half["image_auroc"], binned["image_auroc"]);

    // OK/NG folders only: image metrics, null pixel metrics, one line saying why.
    std::fs::remove_dir_all(&gt).unwrap();
    let okng = eval_json(&data, &[]);
    for k in ["pixel_auroc", "pixel_ap", "pro", "pixel_metrics"] {
        assert!(okng[k].is_null(), "{k} should be null: {okng}");
    }
    assert_eq!(okng["image_auroc"], binned["image_auroc"]);
    assert_eq!(okng["masked_defective"], 0);
    assert!(okng["pixel_note"].as_str().unwrap().contains("not available"), "{okng}");
    let table = ok(nexvitad().args(["eval", "--shots", "3", "--k", "10", "--category", "grain", "--data"]).arg(&data));
    assert!(table.contains('—') && table.contains("pixel metrics not available"), "{table}");

    // Nothing to compute: only defective, only good, no test images at all.
    let test = data.join("grain/test");
    std::fs::rename(test.join("good"), t.path().join("good")).unwrap();
    let e = eval_err(&data);
    assert!(e.contains("no good test images"), "{e}");
    std::fs::rename(&test, t.path().join("defective")).unwrap();
    std::fs::create_dir_all(&test).unwrap();
    std::fs::rename(t.path().join("good"), test.join("good")).unwrap();
    let e = eval_err(&data);
    assert!(e.contains("only good test images"), "{e}");
    std::fs::remove_dir_all(test.join("good")).unwrap();
    let e = eval_err(&data);
    assert!(e.contains("no test images"), "{e}");
}

/// A mask of the wrong size or one that is not an image is an error naming the file; a
/// 16-bit or RGBA mask is read as "non-zero = defect".
#[test]
fn eval_bad_masks_name_the_file() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(nexvitad().args(["synth", "--size", "96", "--domains", "grain", "--test-good", "3", "--defects-per-type", "1", "--out"]).arg(&data));
    let spot = data.join("grain/ground_truth/spot");
    let mask = std::fs::read_dir(&spot).unwrap().next().unwrap().unwrap().path();
    let orig = image::open(&mask).unwrap().to_luma8();
    let before = eval_json(&data, &["--exact"]);

    let wide: image::ImageBuffer<image::Luma<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(orig.width(), orig.height(), |x, y| image::Luma([orig.get_pixel(x, y)[0] as u16 * 257]));
    wide.save(&mask).unwrap();
    let v = eval_json(&data, &["--exact"]);
    assert_eq!(v["pixel_auroc"], before["pixel_auroc"], "16-bit mask reads as the 8-bit one");
    image::DynamicImage::ImageLuma8(orig.clone()).to_rgba8().save(&mask).unwrap();
    let v = eval_json(&data, &["--exact"]);
    assert_eq!(v["pixel_auroc"], before["pixel_auroc"], "RGBA mask reads as the 8-bit one");

    image::GrayImage::new(orig.width() + 1, orig.height()).save(&mask).unwrap();
    let e = eval_err(&data);
    assert!(e.contains(&mask.display().to_string()) && e.contains("mask is 97x96 but its image is 96x96"), "{e}");
    std::fs::write(&mask, b"not a png").unwrap();
    let e = eval_err(&data);
    assert!(e.contains(&mask.display().to_string()) && e.contains("decode"), "{e}");
}

#[test]
fn missing_ort_library_lists_every_path_tried() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexvitad"))
        .args(["info", "--model"])
        .arg(tiny_model_dir())
        .env("NEXVITAD_ORT_LIBRARY", "/nonexistent/a/libonnxruntime.so")
        .env("ORT_DYLIB_PATH", "/nonexistent/b/libonnxruntime.so")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/nonexistent/a/libonnxruntime.so") && err.contains("/nonexistent/b/libonnxruntime.so"), "{err}");
    assert!(err.contains("beside nexvitad"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexvitad"))
        .args(["info", "--ort", "/nonexistent/c.so", "--model"])
        .arg(tiny_model_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/c.so") && err.contains("no such file"), "{err}");
}

#[test]
fn a_file_that_is_not_ort_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let fake = t.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexvitad"))
        .args(["info", "--ort"])
        .arg(&fake)
        .arg("--model")
        .arg(tiny_model_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("could not load ONNX Runtime"), "{err}");
}

#[test]
fn info_prints_manifest_shapes_and_fingerprint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexvitad"))
        .args(["info", "--ort"])
        .arg(ort_library())
        .arg("--model")
        .arg(tiny_model_dir())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.contains(tiny_model().fingerprint()), "{s}");
    assert!(s.contains("stage1") && s.contains("patch_grid") && s.contains("\"format_version\": 1"), "{s}");
}

/// A small synthetic dataset for the training CLI test.
fn train_data() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nexvitad-cli-train-{}", std::process::id()));
    if !d.join("grain").is_dir() {
        let o = nexvitad::data::SynthOptions { seed: 3, size: 64, domains: vec!["stripes".into(), "weave".into(), "grain".into()], ..Default::default() };
        nexvitad::data::generate(&d, &o).unwrap();
    }
    d
}

#[test]
fn cli_train_rejects_theta_outside_the_unit_interval() {
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nexvitad"))
        .args(["train", "--data"])
        .arg(train_data())
        .args(["--sources", "stripes,weave", "--target", "grain", "--theta", "1.2", "--out"])
        .arg(out.path().join("m"))
        .arg("--model")
        .arg(tiny_model_dir())
        .env("NEXVITAD_ORT_LIBRARY", ort_library())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("theta") && err.contains("(0, 1)"), "{err}");
    std::fs::remove_dir_all(train_data()).ok();
}

/// `train --json` reports the feature cache and the peak memory; a disk too small for the
/// cache (a file-size limit, as a nearly full disk) fails at once, in one line that names the
/// cache and the size it needs, and leaves neither a cache nor a model behind.
#[test]
fn cli_train_feature_cache_reports_and_a_full_disk_fails_cleanly() {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    let o = nexvitad::data::SynthOptions { seed: 3, size: 64, domains: vec!["stripes".into(), "weave".into(), "grain".into()], ..Default::default() };
    nexvitad::data::generate(data.path(), &o).unwrap();
    let out = tempfile::tempdir().unwrap();
    let train = |dir: &std::path::Path, extra: &[&str]| {
        let mut c = nexvitad();
        c.args(["train", "--data"])
            .arg(data.path())
            .args(["--sources", "stripes,weave", "--target", "grain", "--epochs", "1", "--batch", "4", "--copies", "1", "--decoder-width", "8", "--out"])
            .arg(dir)
            .args(extra);
        c
    };
    let s = ok(&mut train(&out.path().join("a"), &["--json", "--cache-mem", "64M"]));
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    let cache = &v["cache"];
    let sets = cache["feature_sets"].as_u64().unwrap();
    assert!(sets > 0 && cache["encoded"].as_u64() == Some(sets) && cache["reused"].as_u64() == Some(0), "{v}");
    assert_eq!(cache["mem_budget"].as_u64(), Some(64 << 20));
    assert_eq!(cache["bytes"].as_u64().unwrap(), std::fs::metadata(out.path().join("a").join("features.nxcache")).unwrap().len());
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0 && v["encode_s"].as_f64().is_some() && v["train_s"].as_f64().is_some(), "{v}");
    // The text summary names the cache and what it did.
    let text = ok(train(&out.path().join("b"), &["--cache-dir"]).arg(out.path().join("a")));
    assert!(text.contains("feature cache") && text.contains(&format!("0 encoded, {sets} reused")), "{text}");

    // A file-size limit of 1 MiB: the cache (several MB) cannot be reserved.
    let mut c = train(&out.path().join("full"), &[]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let r = c.output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the training feature cache") && err.contains("features.nxcache") && err.contains("the cache needs"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let full = out.path().join("full");
    assert!(!full.join("features.nxcache").exists() && !full.join("model.json").exists(), "nothing half-written is left");
    // With room again, the same command trains into that folder.
    ok(&mut train(&full, &[]));
}

/// `eval --reference-model`: the INT8 fixture against its fp32 source (within the bound:
/// exit 0), a model with another fusion (far beyond it: exit 2, said in words), and a
/// reference folder that is not a model (one clear line).
#[test]
fn eval_reference_model_reports_map_drift() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(nexvitad().args(["synth", "--size", "128", "--domains", "grain", "--train-good", "4", "--test-good", "2", "--defects-per-type", "1", "--out"]).arg(&data));
    let eval = |model: &std::path::Path, reference: &std::path::Path, json: bool| {
        let mut c = nexvitad();
        c.args(["eval", "--shots", "4", "--k", "8", "--category", "grain", "--data"]).arg(&data);
        c.arg("--model").arg(model).arg("--reference-model").arg(reference);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let int8 = root().join("tests/fixtures/int8/tiny-dynamic");
    let out = eval(&int8, &tiny_model_dir(), true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"]["within_bound"], true, "{v}");
    assert_eq!(v["drift"]["images"], 2 + 4);
    assert!(v["reference"]["pixel_auroc"].is_number() && v["candidate"]["pixel_auroc"].is_number() && v["pixel_auroc_delta"].is_number(), "{v}");

    // Another fusion (patch neighbourhood 1 instead of 3) is another model: its maps differ.
    let other = t.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for f in ["hiera.onnx", "dinov2.onnx", "model.json"] {
        std::fs::copy(tiny_model_dir().join(f), other.join(f)).unwrap();
    }
    let json = std::fs::read_to_string(other.join("model.json")).unwrap();
    assert!(json.contains("\"local_avg\": 3"));
    std::fs::write(other.join("model.json"), json.replace("\"local_avg\": 3", "\"local_avg\": 1")).unwrap();
    let out = eval(&other, &tiny_model_dir(), false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("map drift over 6 images") && text.contains("BEYOND the bound"), "{text}");

    let out = eval(&int8, &data, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.starts_with("nexvitad: error:") && err.contains("model.json") && err.lines().count() == 1, "{err}");
}
