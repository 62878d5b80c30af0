//! The layering rule, checked: each module of the library uses only modules of lower layers
//! (`use crate::…` and inline `crate::…` paths). The picture is in the README's Layout
//! section; [`LAYERS`] is the same picture as data. A module added to `src/` must be placed
//! here, or this test fails and says so.

use std::path::{Path, PathBuf};

/// Bottom to top. A module may use the modules of the layers before its own.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["kernels", "fsutil", "tensors"],
    &["manifest", "runtime"],
    &["image", "roi"],
    &["tiling"],
    &["encoder"],
    &["fusion"],
    &["model"],
    &["map", "regions"],
    &["bank"],
    &["score"],
    &["metrics", "data", "viz"],
    &["eval"],
    &["train"],
    &["capi"],
];

/// Crate-root files that are not modules of the pipeline.
const ROOT_FILES: &[&str] = &["lib", "main", "layering"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::name` in `text` (skipping line comments), with its line number.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            // `$crate::` in macros and `nexvitad_crate::`-like names are not crate paths.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
    }
    out
}

/// The violations in the files under `src` (the CLI is a separate program and exempt).
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        let module = first.trim_end_matches(".rs");
        if module == "cli" || ROOT_FILES.contains(&module) {
            continue;
        }
        let Some(own) = layer_of(module) else {
            bad.push(format!("src/{}: module `{module}` has no layer in src/layering.rs (LAYERS)", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&f).expect("read source");
        for (line, used) in crate_refs(&text) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(l) => bad.push(format!(
                    "src/{}:{line}: `{module}` (layer {own}) uses `{used}` (layer {l}); a module may use only the layers below it (README, Layout)",
                    rel.display()
                )),
                None if ["Error", "Result"].contains(&used.as_str()) => {}
                None => bad.push(format!("src/{}:{line}: `{module}` uses `crate::{used}`, which has no layer in src/layering.rs", rel.display())),
            }
        }
    }
    bad
}

#[test]
fn layering_each_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "layering violated:\n{}", bad.join("\n"));
}

#[test]
fn layering_check_catches_an_upward_use() {
    let dir = std::env::temp_dir().join(format!("nexvitad-layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bank")).unwrap();
    std::fs::write(dir.join("bank/calibrate.rs"), "use crate::error::Result;\nuse crate::score::score; // upward\n").unwrap();
    std::fs::write(dir.join("kernels.rs"), "/// [`crate::bank`] in a doc comment is not a use\nfn f() { crate::bank::MemoryBank::x(); } // crate::score in a comment is not either\n").unwrap();
    std::fs::write(dir.join("newmod.rs"), "").unwrap();
    let bad = violations(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].contains("src/bank/calibrate.rs:2: `bank` (layer 9) uses `score` (layer 10)"), "{}", bad[0]);
    assert!(bad[1].contains("src/kernels.rs:2: `kernels` (layer 1) uses `bank` (layer 9)"), "{}", bad[1]);
    assert!(bad[2].contains("`newmod` has no layer"), "{}", bad[2]);
}
