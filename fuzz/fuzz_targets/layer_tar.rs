//! A layer, compressed (gzip, zstd) or not, through strata's tar reader.
#![no_main]
use std::io::Read;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.tar");
    let _ = strata::tarsafe::for_each_entry(path, data, |_, _| Ok(()));
    if let Ok(r) = strata::layer::decompress(data) {
        let mut out = Vec::new();
        if r.take(16 << 20).read_to_end(&mut out).is_ok() {
            let _ = strata::tarsafe::for_each_entry(path, &out[..], |_, _| Ok(()));
        }
    }
    let _ = strata::tarsafe::parse_pax(data);
});
