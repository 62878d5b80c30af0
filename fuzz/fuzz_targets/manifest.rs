//! `model.json`: arbitrary bytes into `Manifest::parse`. An accepted manifest must round-trip
//! through `to_json`, and the untrained fusion head that `Model::open` builds from it next
//! (sized by the manifest's widths) must be allocatable: a hostile manifest must not be able
//! to make opening a model abort on memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexvitad::fusion::Head;
use nexvitad::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else { return };
    let again = Manifest::parse(m.to_json().as_bytes()).expect("a written manifest parses");
    assert_eq!(again, m);
    let head = Head::untrained(&m, 0);
    assert_eq!(head.stages().len(), 4);
    assert!(Head::patch_dim(&m) > 0);
});
