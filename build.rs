//! Build script: the shared library's soname, and `include/nexvitad.h` from `src/capi/`.
//!
//! The header is generated here on every build, so it cannot drift from the Rust
//! declarations, and is also committed so readers and packagers see it without building.
//! It is rewritten only when its content changes (no needless rebuilds of C consumers).
//! With `NEXVITAD_HEADER_CHECK=1` a differing committed header is an error instead of being
//! rewritten: CI uses that to prove the committed file is current.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("CARGO_PKG_VERSION_MAJOR");
    let version = std::env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION");

    // Only the cdylib gets a soname (libnexvitad.so.<major>): the loader then binds
    // consumers to the ABI major, and `make install` adds the matching symlinks.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnexvitad.so.{major}");
    }

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=include/nexvitad.h");
    println!("cargo:rerun-if-env-changed=NEXVITAD_HEADER_CHECK");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        // Only the C ABI module is parsed: it defines every type the header shows.
        .with_src(crate_dir.join("src/capi/mod.rs"))
        .with_after_include(format!(
            "\n/** The library version this header was generated for. */\n#define NEXVITAD_VERSION \"{version}\"\n"
        ))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate nexvitad.h from src/capi: {e}"));
    let mut text = Vec::new();
    bindings.write(&mut text);

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out_dir.join("nexvitad.h"), &text).expect("write OUT_DIR/nexvitad.h");

    let committed = crate_dir.join("include/nexvitad.h");
    if std::fs::read(&committed).ok().as_deref() != Some(text.as_slice()) {
        if std::env::var("NEXVITAD_HEADER_CHECK").as_deref() == Ok("1") {
            panic!(
                "include/nexvitad.h differs from what src/capi generates ({}); build without NEXVITAD_HEADER_CHECK to update it, then commit it",
                out_dir.join("nexvitad.h").display()
            );
        }
        std::fs::create_dir_all(committed.parent().expect("include dir")).expect("create include/");
        std::fs::write(&committed, &text).expect("write include/nexvitad.h");
    }
}
