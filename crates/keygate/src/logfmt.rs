//! The plain log line, written by hand where that is cheaper.
//!
//! `tracing-subscriber`'s `Full` format costs about 9,000 instructions for the request
//! line `serve` writes after every request (measured with callgrind on `/healthz`): its
//! timestamp, its styling wrappers (painted even with colours off) and a `fmt` call for
//! every name and separator. [`Plain`] writes the very same line — timestamp, level,
//! target, message, `name=value` fields, as `Full` writes them without colours — from a
//! timestamp kept per second and plain string pushes. Whatever it does not write the
//! same way (colours on a terminal, an event inside a span, an error value with its
//! causes) it hands to `Full` itself, so no line loses anything.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The plain event format (see the module documentation).
#[derive(Debug, Default)]
pub struct Plain {
    full: Format<Full>,
}

#[cfg(test)]
thread_local! {
    /// Lines this thread wrote by hand (tests check the hand path was taken).
    static BY_HAND: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// The line being written, and the second its timestamp prefix was made for.
    static LINE: RefCell<(String, i64, [u8; 19])> = const { RefCell::new((String::new(), i64::MIN, [0; 19])) };
}

/// Appends `n` as `width` decimal digits.
fn push_digits(out: &mut String, n: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = n.unsigned_abs();
    for i in (0..width.min(20)).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width.min(20)]).unwrap_or(""));
}

/// `YYYY-MM-DDTHH:MM:SS` for epoch second `s`.
fn second_prefix(s: i64) -> [u8; 19] {
    let c = keygate_core::date::civil(s);
    let mut t = String::with_capacity(19);
    push_digits(&mut t, c.year, 4);
    t.push('-');
    push_digits(&mut t, c.month, 2);
    t.push('-');
    push_digits(&mut t, c.day, 2);
    t.push('T');
    push_digits(&mut t, c.hour, 2);
    t.push(':');
    push_digits(&mut t, c.minute, 2);
    t.push(':');
    push_digits(&mut t, c.second, 2);
    let mut out = [b'0'; 19];
    out.copy_from_slice(&t.as_bytes()[..19]);
    out
}

/// The level as `Full` pads it.
fn level(l: Level) -> &'static str {
    match l {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes fields as `Full`'s default visitor does without colours; gives up (so the
/// line goes to `Full`) on what it would write differently.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
    unsupported: bool,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        let name = field.name();
        self.out.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.out.push('=');
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name().starts_with("log.") || field.name() == "message" {
            return self.record_debug(field, &value);
        }
        self.name(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name().starts_with("log.") || field.name() == "message" {
            return self.record_debug(field, &value);
        }
        self.name(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        // `Full` also writes the error's causes; it writes this line.
        self.unsupported = true;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if name == "message" {
            if !self.first {
                self.out.push(' ');
            }
            self.first = false;
            let _ = write!(self.out, "{value:?}");
            return;
        }
        self.name(field);
        let _ = write!(self.out, "{value:?}");
    }
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let in_span = ctx
            .event_scope()
            .is_some_and(|mut scope| scope.next().is_some());
        if writer.has_ansi_escapes() || in_span {
            return self.full.format_event(ctx, writer, event);
        }
        let written = LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else {
                // A log line written while one is being formatted (from a value's
                // `Debug`): the plain path is busy.
                return None;
            };
            let (out, second, prefix) = &mut *line;
            out.clear();
            let micros = keygate_core::clock::Clock::system_micros();
            let s = micros.div_euclid(1_000_000);
            if s != *second {
                *prefix = second_prefix(s);
                *second = s;
            }
            out.push_str(std::str::from_utf8(&prefix[..]).unwrap_or(""));
            out.push('.');
            push_digits(out, micros.rem_euclid(1_000_000), 6);
            out.push_str("Z ");
            let meta = event.metadata();
            out.push_str(level(*meta.level()));
            out.push(' ');
            out.push_str(meta.target());
            out.push_str(": ");
            let mut fields = Fields {
                out,
                first: true,
                unsupported: false,
            };
            event.record(&mut fields);
            if fields.unsupported {
                return None;
            }
            #[cfg(test)]
            BY_HAND.with(|n| n.set(n.get() + 1));
            Some(writer.write_str(out).and_then(|()| writer.write_char('\n')))
        });
        match written {
            Some(r) => r,
            None => self.full.format_event(ctx, writer, event),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(
                &self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .into_owned()
        }
    }

    /// The events `serve` writes, and a few shapes beside them.
    fn emit() {
        let method = "GET";
        tracing::info!(
            method = %method,
            route = %"/santaba/rest/setting/admins/{adminId}",
            status = 200u16,
            micros = 41u64,
            principal = Some(1i64),
            "request"
        );
        tracing::info!(method = %method, route = %"unmatched", status = 404u16, micros = 3u64, principal = None::<i64>, "request");
        tracing::warn!(addr = %"127.0.0.1:8080", note = "a \"quoted\" str", n = -5i64, ok = true, "keygate listening");
        tracing::error!("a message alone");
        let e = io::Error::other("disk on fire");
        tracing::warn!(
            error = &e as &(dyn std::error::Error + 'static),
            "with an error value"
        );
        let span = tracing::info_span!("work", id = 7);
        let _in = span.enter();
        tracing::info!(step = 1u64, "inside a span");
    }

    /// Every line without its timestamp (the first 27 characters).
    fn lines(format: impl FnOnce(Buf) -> Box<dyn Subscriber + Send + Sync>) -> Vec<String> {
        let buf = Buf::default();
        tracing::subscriber::with_default(format(buf.clone()), emit);
        buf.text()
            .lines()
            .map(|l| l.get(27..).unwrap_or(l).to_owned())
            .collect()
    }

    #[test]
    fn plain_lines_are_the_full_formats_lines() {
        let full = lines(|b| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(b)
                    .with_ansi(false)
                    .finish(),
            )
        });
        let before = BY_HAND.with(std::cell::Cell::get);
        let plain = lines(|b| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(b)
                    .with_ansi(false)
                    .event_format(Plain::default())
                    .finish(),
            )
        });
        assert_eq!(full.len(), 6, "{full:#?}");
        assert_eq!(plain, full);
        assert_eq!(
            BY_HAND.with(std::cell::Cell::get) - before,
            4,
            "the error value and the span's line go to Full, the other four are written by hand"
        );
        assert!(plain[0].contains(
            "INFO keygate::logfmt::tests: request method=GET route=/santaba/rest/setting/admins/{adminId} status=200 micros=41 principal=1"
        ), "{plain:#?}");
    }

    #[test]
    fn the_timestamp_is_rfc_3339_utc_with_microseconds() {
        assert_eq!(&second_prefix(0), b"1970-01-01T00:00:00");
        assert_eq!(&second_prefix(1_796_125_233), b"2026-12-01T11:40:33");
        let mut s = String::new();
        push_digits(&mut s, 1_234, 6);
        assert_eq!(s, "001234");
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .event_format(Plain::default())
            .finish();
        tracing::subscriber::with_default(sub, || tracing::info!("now"));
        let line = buf.text();
        let ts = &line.as_bytes()[..27];
        assert!(
            ts[4] == b'-' && ts[10] == b'T' && ts[19] == b'.' && ts[26] == b'Z',
            "{line}"
        );
        assert!(ts[20..26].iter().all(u8::is_ascii_digit), "{line}");
    }
}
