//! The bearer token parser: any input either parses into a token that round-trips
//! (same text, same mask length) or is refused with an error — never a panic.
#![no_main]

use keygate_core::token::BearerToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match BearerToken::parse(s) {
        Ok(t) => {
            assert_eq!(t.expose_secret(), s);
            // Masking reveals only the first 7 and last 4 characters.
            let m = t.masked();
            assert_eq!(m.len(), s.len());
            assert_eq!(m.bytes().filter(|&b| b == b'*').count(), s.len() - 11);
            assert_eq!((&m[..7], &m[m.len() - 4..]), (&s[..7], &s[s.len() - 4..]));
            assert_eq!(t.digest(), keygate_core::token::digest_of(s.as_bytes()));
        }
        Err(e) => {
            // The message must not echo a token-like input (it may be someone's
            // secret with a typo).
            let msg = e.to_string();
            let token_like = s.len() >= 12 && s.bytes().all(|b| b.is_ascii_alphanumeric());
            assert!(!token_like || !msg.contains(s), "error echoes input: {msg}");
        }
    }
});
