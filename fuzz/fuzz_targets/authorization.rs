//! The `Authorization` header parser on arbitrary bytes: a credential or an error,
//! never a panic, and a parsed bearer token is exactly the text after the scheme.
#![no_main]

use keygate_core::credentials::{Credential, parse_authorization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Credential::Bearer(t)) = parse_authorization(data) {
        let text = std::str::from_utf8(data).unwrap_or_default();
        assert!(text.ends_with(t.expose_secret()));
    }
});
