//! QR codes as inline SVG, drawn by the server (the console loads no third-party script and the
//! browser never sees a drawing library). Encoded by `qrcodegen` (Nayuki; pure Rust, no
//! dependency), drawn here as one `<rect>` for the light background and one `<path>` for the
//! dark modules: no script, no `style`, no external reference, so it is inert wherever it is
//! shown (the console puts it in an `<img>` from a `data:` URL, which the console's CSP allows).

use qrcodegen::{QrCode, QrCodeEcc};

/// Light modules around the symbol (ISO/IEC 18004 asks for four): readers need the margin.
pub const QUIET_ZONE: i32 = 4;

/// `text` as a QR code (error correction M, raised when the version has room for more), drawn
/// as a complete `<svg>` element whose `viewBox` counts one unit per module, quiet zone included.
/// `None` when the text does not fit the largest version (2,331 bytes at level M).
pub fn svg(text: &str, label: &str) -> Option<String> {
    let code = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    Some(draw(&code, label))
}

fn draw(code: &QrCode, label: &str) -> String {
    let side = code.size() + 2 * QUIET_ZONE;
    // One rectangle per horizontal run of dark modules: a third of the size of one per module.
    let mut path = String::with_capacity((code.size() * code.size()) as usize * 3);
    for y in 0..code.size() {
        let mut x = 0;
        while x < code.size() {
            if !code.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < code.size() && code.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            path.push_str(&format!(
                "M{},{}h{run}v1h-{run}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            ));
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"{}\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>",
        escape(label)
    )
}

/// `text` safe inside a double-quoted XML attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcodegen::{QrSegment, Version};

    const URI: &str = "otpauth://totp/id.example.com%3Aann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=id.example.com&algorithm=SHA1&digits=6&period=30";

    /// The `viewBox` side and the dark modules the path draws, read back from the SVG.
    fn read_back(svg: &str) -> (i32, Vec<(i32, i32)>) {
        let side: i32 = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a viewBox");
        let d = svg
            .split(" d=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a path");
        let modules = d
            .split('M')
            .filter(|m| !m.is_empty())
            .flat_map(|m| {
                let (xy, rest) = m.split_once('h').expect("a run is M x,y h n v1 h-n z");
                let (run, back) = rest.split_once("v1h-").expect("v1h-");
                assert_eq!(back, format!("{run}z"));
                let (x, y) = xy.split_once(',').expect("x,y");
                let (x, y, run): (i32, i32, i32) =
                    (x.parse().unwrap(), y.parse().unwrap(), run.parse().unwrap());
                assert!(run >= 1);
                (x..x + run).map(move |x| (x, y))
            })
            .collect();
        (side, modules)
    }

    #[test]
    fn the_svg_is_one_inert_element_of_rect_and_path() {
        let svg = svg(URI, "QR code <of> \"the\" secret").unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" "));
        assert!(svg.ends_with("/></svg>"));
        // Elements: svg, rect, path, nothing else; each tag closed; the label escaped.
        let tags: Vec<&str> = svg
            .split('<')
            .skip(1)
            .map(|t| t.split([' ', '>', '/']).next().unwrap())
            .collect();
        assert_eq!(tags, ["svg", "rect", "path", ""]);
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        assert!(svg.contains("aria-label=\"QR code &lt;of&gt; &quot;the&quot; secret\""));
        let lower = svg.to_ascii_lowercase();
        for needle in [
            "<script",
            "style",
            "href",
            "javascript:",
            "<foreign",
            "url(",
            " on",
        ] {
            assert!(!lower.contains(needle), "{needle} in the QR code's SVG");
        }
    }

    #[test]
    fn the_svg_draws_every_module_of_the_code_inside_a_quiet_zone() {
        let code = QrCode::encode_text(URI, QrCodeEcc::Medium).unwrap();
        let (side, dark) = read_back(&draw(&code, "QR"));
        assert_eq!(side, code.size() + 2 * QUIET_ZONE);
        // Nothing in the four-module margin.
        for &(x, y) in &dark {
            assert!(
                (QUIET_ZONE..side - QUIET_ZONE).contains(&x),
                "x {x} in the quiet zone"
            );
            assert!(
                (QUIET_ZONE..side - QUIET_ZONE).contains(&y),
                "y {y} in the quiet zone"
            );
        }
        // The drawing is the code, module for module.
        let mut want = Vec::new();
        for y in 0..code.size() {
            for x in 0..code.size() {
                if code.get_module(x, y) {
                    want.push((x + QUIET_ZONE, y + QUIET_ZONE));
                }
            }
        }
        assert_eq!(dark, want);
        // The three finder patterns: a dark 7x7 ring at the corners, right after the margin.
        for (cx, cy) in [(0, 0), (code.size() - 7, 0), (0, code.size() - 7)] {
            for i in 0..7 {
                for p in [(i, 0), (i, 6), (0, i), (6, i)] {
                    let at = (cx + p.0 + QUIET_ZONE, cy + p.1 + QUIET_ZONE);
                    assert!(dark.contains(&at), "finder module {at:?}");
                }
            }
        }
    }

    #[test]
    fn the_version_is_the_smallest_that_holds_the_uri() {
        let (side, _) = read_back(&svg(URI, "QR").unwrap());
        let version = ((side - 2 * QUIET_ZONE - 17) / 4) as u8;
        let segs = QrSegment::make_segments(URI);
        let fits = |v: u8| {
            QrCode::encode_segments_advanced(
                &segs,
                QrCodeEcc::Medium,
                Version::new(v),
                Version::new(v),
                None,
                false,
            )
            .is_ok()
        };
        assert!(fits(version), "version {version} holds the URI");
        assert!(!fits(version - 1), "version {} would too", version - 1);
        // An account with a long email still fits; a text past the largest version does not.
        let long = URI.replace("ann%40", &"a".repeat(200));
        assert!(svg(&long, "QR").is_some());
        assert!(svg(&"x".repeat(3000), "QR").is_none());
    }
}
