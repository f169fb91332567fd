#![no_main]
// The property lives in formica_api::fuzzing, where `cargo test` runs it over the seeds too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| formica_api::fuzzing::gateway_request(data));
