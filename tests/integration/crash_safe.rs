//! Crash-safe saves: a save killed at any moment leaves the old or the new bank, never a
//! broken file, and temp files do not pile up; concurrent saves of one path all succeed.
//!
//! The kill test re-runs this test binary as a child (`crash_child_saves_forever`, ignored in
//! normal runs and selected by name) that saves two large banks in turn over one file until
//! the parent SIGKILLs it: half the kills at a random moment of the save cycle, half aimed
//! at a moment when the child's temp file exists (mid-write).


use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ndarray::Array2;
use crate::common::temp_files;
use nexvitad::bank::{Augment, BankMeta, Calibration, ImageScoreMode};
use nexvitad::{MemoryBank, ScorerKind};
use rand::{Rng, SeedableRng};

/// Where the child saves (set by the parent; the child test does nothing without it).
const CHILD_ENV: &str = "NEXVITAD_CRASH_CHILD_TARGET";
/// Which bank the child saves first (0 or 1): alternated between children, so the file keeps
/// changing however slow a save is on this machine.
const CHILD_FIRST_ENV: &str = "NEXVITAD_CRASH_CHILD_FIRST";
/// The child's "first save done" line (libtest may print it after its own "test ... " text).
const READY: &str = "NEXVITAD-CRASH-CHILD-READY";
/// Rows of the banks the kill test saves: 160k x 64 f32 = 40 MiB, so each save takes long
/// enough (serialise, write, fsync) that kills often land inside one.
const BIG_ROWS: usize = 160_000;
const DIM: usize = 64;

/// A full-scorer bank with deterministic random vectors; `seed` tells banks apart.
fn bank(seed: u64, rows: usize) -> MemoryBank {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let vectors = Array2::from_shape_simple_fn((rows, DIM), || rng.random::<f32>());
    let meta = BankMeta {
        fingerprint: format!("{seed:064x}"),
        grid_h: 8,
        grid_w: 8,
        dim: DIM,
        scorer: ScorerKind::Full,
        k: 0,
        sigma: 4.0,
        image_score: ImageScoreMode::Max,
        augment: Augment::default(),
        shots: 4,
        seed,
        iterations: 0,
        converged: false,
        calibration: Calibration {
            method: "leave-one-out".into(),
            target_fpr: 0.01,
            image_threshold: 1.5,
            pixel_threshold: 1.25,
            normal_image_scores: vec![1.0, 1.25, 1.5, 1.0],
            image_mean: 1.2,
            image_std: 0.2,
            pixel_quantiles: [0.5, 0.9, 0.99, 1.2],
            pixel_tail: Vec::new(),
        },
        tiles: None,
        roi: None,
        growth: None,
    };
    MemoryBank::from_parts(vectors, meta).expect("bank parts")
}

fn same(a: &MemoryBank, b: &MemoryBank) -> bool {
    a.meta() == b.meta()
        && a.vectors().dim() == b.vectors().dim()
        && a.vectors().iter().zip(b.vectors().iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// A folder on the target dir's filesystem (a real disk, where fsync costs what it costs).
fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

/// The child: saves bank 1 and bank 2 in turn (starting with the one [`CHILD_FIRST_ENV`]
/// names) over the target forever, printing [`READY`] once the first save is done.
#[test]
#[ignore = "child process of kill_during_save_leaves_old_or_new_bank; does nothing on its own"]
fn crash_child_saves_forever() {
    let Some(target) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    let first: usize = std::env::var(CHILD_FIRST_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let banks = [bank(1, BIG_ROWS), bank(2, BIG_ROWS)];
    for i in 0usize.. {
        banks[(first + i) % 2].save(&target).expect("child save");
        if i == 0 {
            println!("\n{READY}");
        }
    }
}

#[test]
fn kill_during_save_leaves_old_or_new_bank() {
    const KILLS: usize = 20;
    let dir = work_dir();
    let target = dir.path().join("line3.bank");
    let (b1, b2) = (bank(1, BIG_ROWS), bank(2, BIG_ROWS));
    b1.save(&target).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let mut mid_write = 0;
    let mut saw = [false; 2];
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_safe::crash_child_saves_forever", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &target)
            .env(CHILD_FIRST_ENV, ((kill / 2) % 2).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        // Wait until the child has saved once, so its start-up cleanup has run.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited before saving (kill {kill})");
            if line.trim() == READY {
                break;
            }
        }
        if kill % 2 == 0 {
            // Anywhere in the save cycle: serialising, writing, syncing, renaming.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        } else {
            // Aimed: once the child's temp file exists, so the kill lands inside a write
            // however the time splits between serialising and writing on this machine.
            let mut polls = 0;
            while temp_files(&target).is_empty() {
                polls += 1;
                assert!(polls < 600_000, "kill {kill}: the child never started a write");
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, no cleanup runs.
        child.wait().unwrap();

        let temps = temp_files(&target);
        assert!(temps.len() <= 1, "kill {kill}: temp files pile up: {temps:?}");
        mid_write += temps.len();
        let loaded = MemoryBank::load_unchecked(&target, u64::MAX)
            .unwrap_or_else(|e| panic!("kill {kill}: the bank no longer loads: {e}"));
        let which = [same(&loaded, &b1), same(&loaded, &b2)];
        assert!(which[0] || which[1], "kill {kill}: the file is neither the old nor the new bank");
        saw[0] |= which[0];
        saw[1] |= which[1];
    }
    // Aimed kills land mid-write unless the write ends within microseconds of being seen;
    // if none did, the test did not test what it claims.
    assert!(mid_write > 0, "no kill landed during a write");
    assert!(saw[0] && saw[1], "the file never changed between the two banks: {saw:?}");
    eprintln!("{KILLS} kills, {mid_write} during a write (temp file left behind)");

    // The next save removes what the killed children left.
    b1.save(&target).unwrap();
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
    assert!(same(&MemoryBank::load_unchecked(&target, u64::MAX).unwrap(), &b1));
}

/// Regression (fsutil): the temp file name was `.<name>.tmp-<pid>`, shared by every thread
/// of a process, so concurrent saves of one path truncated each other's temp file and all
/// but one rename failed with "No such file or directory".
#[test]
fn regression_fsutil_concurrent_saves_same_path() {
    let dir = work_dir();
    let target = dir.path().join("shared.bank");
    let banks: Vec<MemoryBank> = (0..8).map(|s| bank(100 + s, 2_000)).collect();
    std::thread::scope(|sc| {
        for b in &banks {
            let target = &target;
            sc.spawn(move || {
                for _ in 0..10 {
                    b.save(target).expect("concurrent save");
                }
            });
        }
    });
    let loaded = MemoryBank::load_unchecked(&target, u64::MAX).unwrap();
    assert!(banks.iter().any(|b| same(&loaded, b)), "the file is none of the saved banks");
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
}

#[test]
fn stale_temp_files_of_dead_processes_are_removed_live_ones_kept() {
    let dir = work_dir();
    let target = dir.path().join("b.bank");
    // Above any Linux pid_max: this process cannot exist.
    let dead = dir.path().join(".b.bank.tmp-2000000000-0");
    let live = dir.path().join(format!(".b.bank.tmp-{}-999999", std::process::id()));
    let other_target = dir.path().join(".c.bank.tmp-2000000000-0");
    let not_ours = dir.path().join(".b.bank.tmp-notapid");
    for p in [&dead, &live, &other_target, &not_ours] {
        std::fs::write(p, b"partial").unwrap();
    }
    bank(3, 100).save(&target).unwrap();
    assert!(!dead.exists(), "a dead process's temp file was kept");
    assert!(live.exists(), "a live process's temp file (a save in flight) was removed");
    assert!(other_target.exists() && not_ours.exists(), "files of other targets were touched");
}

#[test]
fn failed_save_keeps_old_bank_and_leaves_no_temp_file() {
    let dir = work_dir();
    let target = dir.path().join("b.bank");
    let old = bank(4, 100);
    old.save(&target).unwrap();
    // A read-only folder: the temp file cannot be created; the old bank must stay.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let ro_target = ro.join("b.bank");
    old.save(&ro_target).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let writable = std::fs::File::create(ro.join("probe")).is_ok(); // root ignores modes
    if !writable {
        let e = bank(5, 100).save(&ro_target).unwrap_err();
        assert!(matches!(e, nexvitad::Error::Io { .. }), "{e}");
        assert!(same(&MemoryBank::load_unchecked(&ro_target, u64::MAX).unwrap(), &old));
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Saving over a directory fails at the rename; the temp file is cleaned up.
    let as_dir = dir.path().join("d.bank");
    std::fs::create_dir(&as_dir).unwrap();
    assert!(bank(5, 100).save(&as_dir).is_err());
    assert_eq!(temp_files(&as_dir), Vec::<PathBuf>::new());
}
