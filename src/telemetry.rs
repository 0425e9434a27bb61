//! Logging: JSON lines in production, readable text in development; `RUST_LOG` filters.
//!
//! A JSON line is `{"timestamp", "level", the event's fields, "target", "spans"}`, where `spans`
//! lists every enclosing span with its fields and `name`, the outermost first (the request's
//! method, path and id are on every line written while it runs). tracing-subscriber's own JSON
//! format writes the same, but parses each span's fields back from text for every line that lists
//! them; `JsonLine` writes the text `SpanFields` formatted a span's fields to once, when it
//! opened (`bench/instructions` (a): see docs/performance.md).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls do nothing (tests build many apps).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(SpanFields)
            .event_format(JsonLine)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The JSON line format (see the module's documentation), with span fields formatted by
/// `SpanFields`.
pub struct JsonLine;

impl<S> FormatEvent<S, SpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A `log` record's target and level are those it was written with, not the bridge's.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields::new(&mut w, false);
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        json_str(&mut w, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                w.write_char('{')?;
                let ext = span.extensions();
                // `{"a":1,"b":"x"}` as SpanFields wrote it when the span opened: its members as they are.
                let members = ext
                    .get::<FormattedFields<SpanFields>>()
                    .and_then(|f| f.fields.strip_prefix('{')?.strip_suffix('}'))
                    .filter(|m| !m.is_empty());
                if let Some(members) = members {
                    w.write_str(members)?;
                    w.write_char(',')?;
                }
                w.write_str("\"name\":")?;
                json_str(&mut w, span.name())?;
                w.write_char('}')?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

/// A span's fields as one JSON object, `{"name":value,...}`, formatted once when the span opens
/// (and extended when a field is recorded later).
pub struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'w>, fields: R) -> fmt::Result {
        w.write_char('{')?;
        let mut members = Fields::new(&mut w, true);
        fields.record(&mut members);
        members.result?;
        w.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.pop() != Some('}') {
            current.fields.clear();
            return self.format_fields(current.as_writer(), fields);
        }
        let first = current.fields == "{";
        let mut w = current.as_writer();
        let mut members = Fields::new(&mut w, first);
        fields.record(&mut members);
        members.result?;
        w.write_char('}')
    }
}

/// Writes fields as members of a JSON object, with a comma before each but a `first`; the
/// `log.*` fields of a bridged `log` record are left out (their target is the line's).
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'a, 'w> Fields<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, first: bool) -> Self {
        Fields {
            w,
            first,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let comma = !std::mem::take(&mut self.first);
        self.result = (|| {
            if comma {
                self.w.write_char(',')?;
            }
            json_str(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_str(w, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as text.
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| json_str(w, &value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string.
fn json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string: quotes, backslashes and every
/// control character, so that text from a request (a name, a path) can neither end the string
/// nor start a new line (V16.4.1); U+2028 and U+2029 too, for readers that take them for line
/// ends.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", c as u32)?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .fmt_fields(SpanFields)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_event_its_target_and_every_enclosing_span_outermost_first() {
        let got = lines(|| {
            let outer = tracing::info_span!("request", method = "GET", path = "/a");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner", n = 3u64);
            let _i = inner.enter();
            tracing::info!(status = 200u16, latency_ms = 1u64, ok = true, "answered");
            let bare = tracing::info_span!("bare");
            let _b = bare.enter();
            tracing::warn!(reason = %"x", "no fields above");
        });
        assert_eq!(got.len(), 2);
        let l = &got[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "answered");
        assert_eq!(
            (l["status"].as_u64(), l["ok"].as_bool()),
            (Some(200), Some(true))
        );
        assert_eq!(l["target"], module_path!());
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
        assert_eq!(
            l["spans"],
            serde_json::json!([{"method": "GET", "path": "/a", "name": "request"}, {"n": 3, "name": "inner"}])
        );
        assert_eq!(got[1]["spans"][2], serde_json::json!({"name": "bare"}));
        assert_eq!(got[1]["reason"], "x");
    }

    #[test]
    fn a_field_recorded_after_the_span_opened_joins_its_object() {
        let got = lines(|| {
            let s = tracing::info_span!("request", path = "/a", user = tracing::field::Empty);
            let _s = s.enter();
            s.record("user", "u-1");
            let bare = tracing::info_span!("later", n = tracing::field::Empty);
            let _b = bare.enter();
            bare.record("n", 2u64);
            tracing::info!("after");
        });
        assert_eq!(
            got[0]["spans"],
            serde_json::json!([{"path": "/a", "user": "u-1", "name": "request"}, {"n": 2, "name": "later"}])
        );
    }

    #[test]
    fn a_line_outside_any_span_has_no_span_list() {
        let got = lines(|| tracing::error!(code = -1i64, ratio = f64::NAN, "alone"));
        assert!(got[0].get("spans").is_none(), "{}", got[0]);
        assert_eq!(
            (got[0]["code"].as_i64(), got[0]["ratio"].as_str()),
            (Some(-1), Some("NaN"))
        );
    }

    /// V16.4.1: text from a request cannot end its string or start a line of its own.
    #[test]
    fn text_in_fields_and_spans_is_escaped_to_one_line_v16_4_1() {
        let evil = "x\"\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\\\r\t\u{1}\u{7f}\u{2028}é";
        let got = lines(|| {
            let s = tracing::info_span!("request", path = evil);
            let _s = s.enter();
            tracing::info!(who = evil, debug = ?evil, "{evil}");
        });
        assert_eq!(got.len(), 1, "one line");
        let l = &got[0];
        assert_eq!(
            (l["who"].as_str(), l["message"].as_str()),
            (Some(evil), Some(evil))
        );
        assert_eq!(l["spans"][0]["path"], evil);
        assert_eq!(l["debug"], format!("{evil:?}"));
    }
}
