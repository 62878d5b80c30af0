//! Bank files: arbitrary bytes into `MemoryBank::from_bytes` must give a bank or an error,
//! never a panic, an abort or a runaway allocation. A bank that loads must also survive a
//! save/load round trip unchanged (a bank we accept must be one we can write back).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexvitad::MemoryBank;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bank");
    let Ok(bank) = MemoryBank::from_bytes(data, path) else { return };
    let bytes = bank.to_bytes().expect("a loaded bank serialises");
    let again = MemoryBank::from_bytes(&bytes, path).expect("a saved bank loads");
    assert_eq!(again.meta(), bank.meta());
    assert_eq!(again.vectors(), bank.vectors());
});
