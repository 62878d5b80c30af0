//! Runtime dispatch of hot loops to AVX-512 and AVX2 builds of the same code.
//!
//! The crate is built for baseline x86-64 (SSE2), so plain loops over feature channels run
//! 4 floats at a time; the same loop compiled with AVX-512 runs 16. [`multiversion!`]
//! compiles one body three times and picks the widest build the CPU supports (the check is
//! a cached flag). Kernels written with it use elementwise IEEE operations only (no fused
//! multiply-add: Rust never contracts `a * b + c`; no reassociation), so every build gives
//! the same bits and results never depend on the machine.

/// Defines `fn $name(args) { body }` compiled three ways (AVX-512F, AVX2, baseline) and
/// dispatched at run time. Arguments must be plain (no `impl Trait`, no generics).
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;
