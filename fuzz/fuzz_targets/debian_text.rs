//! Debian control paragraphs, relations, versions, dates and sources.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = strata::deb::control::parse_all(text, true);
    if let Ok(r) = strata::deb::control::parse_relations(text) {
        let again = strata::deb::control::format_relations(&r);
        assert_eq!(strata::deb::control::parse_relations(&again), Ok(r));
    }
    let _ = strata::deb::version::Version::parse(text);
    let _ = strata::deb::repo::parse_rfc2822(text);
    let _ = strata::deb::sources::parse_list(text, "fuzz.list");
    let _ = strata::deb::sources::parse_sources(text, "fuzz.sources");
});
