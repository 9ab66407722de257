#![no_main]
//! cargo-fuzz target `model_row`: see `paycore_fuzz::TARGETS`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(target) = paycore_fuzz::target("model_row") {
        (target.run)(data);
    }
});
