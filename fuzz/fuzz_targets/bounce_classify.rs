//! Fuzzes the bounce/complaint/auto-reply reader: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailtrail_bounce::classify(data);
});
