//! Pictures drawn on the server as SVG: QR codes, the payment code's barcode (Code 128), and
//! the monthly spending chart. No image files, no script.

use formica_core::Money;

/// `text` as a QR code (medium error correction, a quiet zone), inline SVG.
pub fn qr(text: &str) -> String {
    let code = match qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M) {
        Ok(code) => code,
        // Only text longer than a QR code holds fails; links here are short.
        Err(_) => return String::new(),
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    strip_declaration(&svg)
}

/// Digits as a Code 128 barcode (character set C: two digits a symbol), inline SVG.
pub fn barcode(digits: &str) -> String {
    let set_c = format!("\u{0106}{digits}");
    let Ok(code) = barcoders::sym::code128::Code128::new(set_c) else {
        return String::new();
    };
    let svg = barcoders::generators::svg::SVG::new(80)
        .xdim(2)
        .generate(code.encode())
        .unwrap_or_default();
    strip_declaration(&svg)
}

/// SVG inline in HTML needs no XML declaration.
fn strip_declaration(svg: &str) -> String {
    match svg.find("<svg") {
        Some(at) => svg[at..].to_owned(),
        None => String::new(),
    }
}

/// The `count` months up to `month` (`yyyy-MM`), oldest first.
pub fn last_months(month: &str, count: u32) -> Vec<String> {
    let (year, number) = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<i32>().ok()?)))
        .unwrap_or((1970, 1));
    let at = year * 12 + (number - 1);
    (0..count as i32)
        .rev()
        .map(|back| {
            let m = at - back;
            format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
        })
        .collect()
}

/// A bar per month with its amount written above it, sized to the largest.
pub fn month_chart(bars: &[(String, Money)]) -> String {
    const WIDTH: usize = 320;
    const HEIGHT: usize = 160;
    const BASE: usize = 130;
    let top = bars.iter().map(|(_, m)| m.amount_minor).max().unwrap_or(0);
    let slot = WIDTH / bars.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"chart-title\"><title id=\"chart-title\">Spending per month: {}</title>",
        bars.iter()
            .map(|(month, money)| format!("{month} {}", crate::view::money(money)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, (month, money)) in bars.iter().enumerate() {
        let height = if top == 0 {
            0
        } else {
            // At least a sliver for any spending, so that a small month is not shown as none.
            ((u128::from(money.amount_minor) * 100 / u128::from(top)) as usize)
                .max(if money.amount_minor > 0 { 2 } else { 0 })
        };
        let x = i * slot + slot / 4;
        let width = slot / 2;
        let label = month.get(5..).unwrap_or(month);
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{height}\" rx=\"3\" fill=\"#1361d8\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5b6b7c\">{label}</text>",
            BASE - height,
            x + width / 2,
            BASE + 16,
        ));
        if money.amount_minor > 0 {
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#1d2733\">{}</text>",
                x + width / 2,
                BASE - height - 4,
                crate::view::money(money)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The 7-day yield day by day as a line, with its last value written at the end.
pub fn yield_chart(points: &[(String, u64)]) -> String {
    const WIDTH: u64 = 320;
    const HEIGHT: u64 = 140;
    const TOP: u64 = 20;
    const BASE: u64 = 110;
    if points.is_empty() {
        return String::new();
    }
    let high = points.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let low = points.iter().map(|(_, v)| *v).min().unwrap_or(0);
    let span = (high - low).max(1);
    let step = if points.len() > 1 {
        (WIDTH - 40) / (points.len() as u64 - 1)
    } else {
        0
    };
    let at = |i: usize, v: u64| (20 + i as u64 * step, BASE - (v - low) * (BASE - TOP) / span);
    let line = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let (x, y) = at(i, *v);
            format!("{x},{y}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let (last_label, last) = &points[points.len() - 1];
    let (x, y) = at(points.len() - 1, *last);
    let first = &points[0].0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"yield-title\"><title id=\"yield-title\">7-day annualised yield from {first} \
         to {last_label}: {}</title><polyline points=\"{line}\" fill=\"none\" stroke=\"#1361d8\" \
         stroke-width=\"2\"/><circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"#1361d8\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#1d2733\">{}</text>\
         <text x=\"20\" y=\"{}\" font-size=\"10\" fill=\"#5b6b7c\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6b7c\">{}</text></svg>",
        crate::fund::percent(*last),
        x.max(60),
        y.saturating_sub(8).max(12),
        crate::fund::percent(*last),
        BASE + 20,
        first.get(5..).unwrap_or(first),
        WIDTH - 20,
        BASE + 20,
        last_label.get(5..).unwrap_or(last_label),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use formica_core::Currency;

    #[test]
    fn months_roll_over_the_year() {
        assert_eq!(
            last_months("2027-02", 4),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
    }

    #[test]
    fn pictures_are_inline_svg() {
        assert!(qr("https://pay.example/qr/1").starts_with("<svg"));
        let bars = barcode("281234567890123456");
        assert!(bars.starts_with("<svg") && bars.contains("rect"), "{bars}");
        let cny = Currency::from_code("CNY").expect("CNY");
        let chart = month_chart(&[
            ("2027-01".into(), Money::new(0, cny)),
            ("2027-02".into(), Money::new(12_345, cny)),
        ]);
        assert!(
            chart.contains("¥123.45") && chart.contains("<title"),
            "{chart}"
        );
    }
}
