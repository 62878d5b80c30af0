//! Handles: what the opaque `nexvitad_model*` / `nexvitad_bank*` pointers stand for.
//!
//! A handle is the address of a small heap block the library owns, registered in a global
//! table that maps it to the real object (an `Arc`). Every call looks the address up instead
//! of dereferencing it, so a freed, foreign or wrong-kind pointer gives
//! NEXVITAD_INVALID_ARGUMENT instead of undefined behaviour. Freed blocks wait in a
//! quarantine of the last [`QUARANTINE`] frees before going back to the allocator, so a
//! double free is caught even when new handles were created in between (the allocator
//! cannot hand the same address to a new handle while it is quarantined).
//!
//! Real heap addresses (not small integers) keep runtimes that scan pointers happy: Go's
//! garbage collector, for one, aborts on pointer values below 4096.
//!
//! A call clones the `Arc` under the table's lock and works without it, so a handle freed
//! on another thread mid-call stays alive until that call ends.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::sync::Arc;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use super::types::{nexvitad_bank, nexvitad_model};
use crate::bank::MemoryBank;
use crate::error::{Error, Result};
use crate::model::Model;

/// Freed handle blocks kept out of the allocator's reach.
const QUARANTINE: usize = 4096;

/// What a model handle owns.
pub(crate) struct ModelHandle {
    pub model: Model,
    /// `model.fingerprint()` as a C string, returned by nexvitad_model_fingerprint().
    pub fingerprint: CString,
}

/// What a bank handle owns: the bank and the model it was built or loaded with.
pub(crate) struct BankHandle {
    pub bank: MemoryBank,
    /// Keeps the model alive for as long as the bank (the model may be freed first); it
    /// scores when nexvitad_score() gets a NULL model.
    pub model: Arc<ModelHandle>,
}

enum Entry {
    Model(Arc<ModelHandle>),
    Bank(Arc<BankHandle>),
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::Model(_) => "nexvitad_model",
            Entry::Bank(_) => "nexvitad_bank",
        }
    }
}

/// The block whose address is the handle. Never read: only its address matters.
type Token = Box<u64>;

#[derive(Default)]
struct Registry {
    live: HashMap<usize, (Entry, Token)>,
    quarantine: VecDeque<Token>,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| Mutex::new(Registry::default()));

fn insert(entry: Entry) -> usize {
    let token: Token = Box::new(0x6e65_7876_6974_6164); // "nexvitad", for anyone peeking in a debugger
    let addr = &*token as *const u64 as usize;
    REGISTRY.lock().live.insert(addr, (entry, token));
    addr
}

fn lookup(addr: usize, want: &'static str, param: &str) -> Result<Entry> {
    if addr == 0 {
        return Err(Error::invalid(format!("{param} is NULL")));
    }
    let reg = REGISTRY.lock();
    match reg.live.get(&addr) {
        Some((Entry::Model(m), _)) if want == "nexvitad_model" => Ok(Entry::Model(m.clone())),
        Some((Entry::Bank(b), _)) if want == "nexvitad_bank" => Ok(Entry::Bank(b.clone())),
        Some((other, _)) => Err(Error::invalid(format!("{param} ({addr:#x}) is a {}, not a {want}", other.kind()))),
        None => Err(Error::invalid(format!(
            "{param} ({addr:#x}) is not a live {want}: already freed, or never returned by nexvitad"
        ))),
    }
}

fn remove(addr: usize, want: &'static str, param: &str) -> Result<()> {
    if addr == 0 {
        return Ok(()); // free(NULL) is a no-op, as in C
    }
    lookup(addr, want, param)?;
    let removed = {
        let mut reg = REGISTRY.lock();
        let Some((entry, token)) = reg.live.remove(&addr) else {
            // Freed by another thread between the lookup and here.
            return Err(Error::invalid(format!("{param} ({addr:#x}) is not a live {want}: already freed")));
        };
        reg.quarantine.push_back(token);
        let old = if reg.quarantine.len() > QUARANTINE { reg.quarantine.pop_front() } else { None };
        (entry, old)
    };
    // The object itself is dropped outside the lock (it may be large, and a bank's drop
    // may drop its model).
    drop(removed);
    Ok(())
}

pub(crate) fn insert_model(h: ModelHandle) -> *mut nexvitad_model {
    insert(Entry::Model(Arc::new(h))) as *mut nexvitad_model
}

pub(crate) fn insert_bank(h: BankHandle) -> *mut nexvitad_bank {
    insert(Entry::Bank(Arc::new(h))) as *mut nexvitad_bank
}

pub(crate) fn model(p: *const nexvitad_model, param: &str) -> Result<Arc<ModelHandle>> {
    match lookup(p as usize, "nexvitad_model", param)? {
        Entry::Model(m) => Ok(m),
        Entry::Bank(_) => Err(Error::Internal("registry returned a bank for a model".into())),
    }
}

pub(crate) fn bank(p: *const nexvitad_bank, param: &str) -> Result<Arc<BankHandle>> {
    match lookup(p as usize, "nexvitad_bank", param)? {
        Entry::Bank(b) => Ok(b),
        Entry::Model(_) => Err(Error::Internal("registry returned a model for a bank".into())),
    }
}

pub(crate) fn free_model(p: *mut nexvitad_model) -> Result<()> {
    remove(p as usize, "nexvitad_model", "model")
}

pub(crate) fn free_bank(p: *mut nexvitad_bank) -> Result<()> {
    remove(p as usize, "nexvitad_bank", "bank")
}
