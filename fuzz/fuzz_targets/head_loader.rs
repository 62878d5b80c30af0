//! `head.safetensors`: arbitrary bytes into `Head::from_bytes` against the tiny model's
//! manifest. An accepted head must round-trip through `to_bytes`.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nexvitad::fusion::Head;
use nexvitad::Manifest;

const MANIFEST: &str = include_str!("../../models/tiny/model.json");

fn manifest() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| Manifest::parse(MANIFEST.as_bytes()).expect("tiny model.json parses"))
}

fuzz_target!(|data: &[u8]| {
    let m = manifest();
    let path = Path::new("head.safetensors");
    let Ok(head) = Head::from_bytes(data, path, m) else { return };
    assert!(head.is_trained());
    let bytes = head.to_bytes(HashMap::new()).expect("a loaded head serialises");
    let again = Head::from_bytes(&bytes, path, m).expect("a saved head loads");
    assert_eq!(again.stages(), head.stages());
});
