#![no_main]
//! cargo-fuzz target `log_index_run`: see `paycore_fuzz::TARGETS`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(target) = paycore_fuzz::target("log_index_run") {
        (target.run)(data);
    }
});
