//! Manifests, indexes and image configs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let m = strata::spec::Manifest::parse(data, "fuzz");
    let i = strata::spec::Index::parse(data, "fuzz");
    assert!(!(m.is_ok() && i.is_ok()), "one document read as both kinds");
    let _ = strata::image::ImageConfig::parse(data, "fuzz");
});
