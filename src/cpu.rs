//! What this x86-64 CPU can run, checked once per process. The hot loops of several
//! domains (signal windows and filters, the LLM's attention) are compiled for these feature
//! sets besides the baseline and pick one at run time, so one binary runs on any x86-64.

/// Whether this CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    })
}

/// Whether this CPU has AVX-512F (sixteen f32 or eight f64 lanes in one register).
#[cfg(target_arch = "x86_64")]
pub fn has_avx512f() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}
