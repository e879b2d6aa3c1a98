//! Decompression cost per MiB: keygate's bounded decode of a gzip body
//! (`keygate_ingest::decode`) against a bare `flate2` decode of the same bytes into a
//! vector. `bench_decode MIB ROUNDS` prints, for each, the median nanoseconds a MiB of
//! decompressed output, and their ratio.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // durations, not times of day

use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(4, |a| a.parse().expect("MIB"));
    let rounds: usize = args.next().map_or(21, |a| a.parse().expect("ROUNDS"));
    // Log lines as a collector sends them: repetitive JSON, about 10:1 compressed.
    let mut plain = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while plain.len() < mib << 20 {
        plain.extend_from_slice(
            format!(
                "{{\"msg\":\"request {i} served in {} ms\",\"_lm.resourceId\":{{\"system.hostname\":\"web-{}\"}},\"timestamp\":{}}},",
                i % 97,
                i % 7,
                1_700_000_000 + i
            )
            .as_bytes(),
        );
        i += 1;
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&plain).unwrap();
    let gz = e.finish().unwrap();
    let per_mib = |f: &dyn Fn() -> usize| {
        let mut t = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let s = Instant::now();
            let n = f();
            t.push(s.elapsed().as_nanos() as f64 / (n as f64 / (1 << 20) as f64));
        }
        t.sort_by(f64::total_cmp);
        t[rounds / 2]
    };
    let bare = per_mib(&|| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        out.len()
    });
    let keygate = per_mib(&|| {
        keygate_ingest::decode::decode(&gz, Some("gzip"), 64 << 20)
            .unwrap()
            .len()
    });
    println!(
        "{} MiB decompressed from {} KiB: flate2 {:.0} ns/MiB, keygate {:.0} ns/MiB, ratio {:.2}",
        plain.len() >> 20,
        gz.len() >> 10,
        bare,
        keygate,
        keygate / bare
    );
}
