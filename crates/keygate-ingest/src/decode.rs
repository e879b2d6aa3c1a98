//! Request bodies' `Content-Encoding`, undone within a bound.

use std::io::Read;

use crate::{IngestError, Result};

/// The body as sent, decompressed when `encoding` says so (`gzip`, `x-gzip`,
/// `deflate`: zlib-wrapped, or raw as some clients send it; `identity` or none), and
/// refused with [`IngestError::TooLarge`] as soon as it would pass `max` bytes.
pub fn decode(body: &[u8], encoding: Option<&str>, max: usize) -> Result<Vec<u8>> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => {
            if body.len() > max {
                return Err(IngestError::TooLarge(max));
            }
            Ok(body.to_vec())
        }
        Some("gzip" | "x-gzip") => bounded(flate2::read::MultiGzDecoder::new(body), max, "gzip"),
        Some("deflate") => {
            // RFC 9110's deflate is zlib-wrapped; some clients send raw deflate. The
            // zlib header's check bits tell them apart.
            let zlib = body.len() >= 2
                && body[0] & 0x0f == 8
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib {
                bounded(flate2::read::ZlibDecoder::new(body), max, "deflate")
            } else {
                bounded(flate2::read::DeflateDecoder::new(body), max, "deflate")
            }
        }
        Some(other) => Err(IngestError::Encoding(other.chars().take(40).collect())),
    }
}

/// Reads `r` to its end, or refuses once more than `max` bytes came out.
fn bounded(r: impl Read, max: usize, what: &'static str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit)
        .read_to_end(&mut out)
        .map_err(|_| IngestError::Corrupt(what))?;
    if out.len() > max {
        return Err(IngestError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        e.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn gzip_and_both_deflates_come_back() {
        let text = b"[{\"msg\":\"hello\"}]".repeat(10);
        assert_eq!(
            decode(&gzip(&text), Some("gzip"), 1 << 20),
            Ok(text.clone())
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap_or_else(|e| panic!("{e}"));
        let z = z.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode(&z, Some("Deflate"), 1 << 20), Ok(text.clone()));
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(&text).unwrap_or_else(|e| panic!("{e}"));
        let d = d.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode(&d, Some("deflate"), 1 << 20), Ok(text.clone()));
        assert_eq!(decode(&text, None, 1 << 20), Ok(text));
    }

    #[test]
    fn a_bomb_stops_at_the_bound() {
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 << 10, "{}", bomb.len());
        assert_eq!(
            decode(&bomb, Some("gzip"), 8 << 20),
            Err(IngestError::TooLarge(8 << 20))
        );
    }

    #[test]
    fn bad_data_and_unknown_encodings_are_named() {
        assert_eq!(
            decode(b"not gzip", Some("gzip"), 100),
            Err(IngestError::Corrupt("gzip"))
        );
        assert_eq!(
            decode(b"x", Some("br"), 100),
            Err(IngestError::Encoding("br".to_owned()))
        );
        assert_eq!(decode(b"12345", None, 4), Err(IngestError::TooLarge(4)));
    }
}
