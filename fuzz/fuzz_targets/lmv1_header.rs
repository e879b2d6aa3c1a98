//! The LMv1 header parser (`LMv1 accessId:signature:epochMillis`) and the signature
//! comparison behind it: arbitrary credentials never panic, and only the right
//! signature matches.
#![no_main]

use keygate_core::credentials::{Credential, parse_authorization};
use keygate_core::lmv1::AccessKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut header = b"LMv1 ".to_vec();
    header.extend_from_slice(data);
    let Ok(Credential::Lmv1(c)) = parse_authorization(&header) else {
        return;
    };
    let key = AccessKey::from_secret("fuzz-key".to_owned());
    let expected = key.signer("GET", c.epoch_millis).finish("/setting/admins");
    let sent_is_expected = expected.matches(&c.signature);
    let real = key
        .signer("GET", c.epoch_millis)
        .finish("/setting/admins")
        .into_string();
    assert_eq!(sent_is_expected, c.signature == real);
});
