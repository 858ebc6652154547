//! Non-image assets of the sample: small valid PDF documents, written by hand, and UTF-8
//! text notes.
//!
//! The PDF is the smallest honest one: a catalog, a page tree, pages with a Helvetica text
//! block and a coloured bar, an info dictionary and a cross-reference table whose offsets are
//! computed from the bytes written, so strict readers accept it.

use std::fmt::Write as _;

use super::rng::Rng;

/// Words the documents are made of.
const WORDS: &[&str] = &[
    "trail", "summit", "ridge", "valley", "lake", "rope", "tent", "jacket", "season", "route", "map",
    "weather", "forecast", "guide", "safety", "water", "snow", "sunrise", "campsite", "gear",
];

/// A sentence of `n` seeded words, capitalized and ended with a full stop.
fn sentence(rng: &mut Rng, n: u32) -> String {
    let mut text = String::new();
    for i in 0..n {
        let word = *rng.pick(WORDS);
        if i == 0 {
            let mut chars = word.chars();
            text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            text.push_str(chars.as_str());
        } else {
            text.push(' ');
            text.push_str(word);
        }
    }
    text.push('.');
    text
}

/// Escapes text for a PDF literal string; anything outside printable ASCII becomes `?`
/// (the standard Helvetica encoding has no simple mapping for it).
fn pdf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// A PDF of 1–3 A4 pages titled `title`, with seeded sentences and a seeded colour bar.
/// `date` is the creation date as `YYYYMMDDHHmmSS` (UTC).
pub(crate) fn pdf(title: &str, date: &str, rng: &mut Rng) -> Vec<u8> {
    let pages = rng.between(1, 3) as usize;
    // Objects: 1 catalog, 2 page tree, 3 font, 4 info, then a page and its contents per page.
    let page_id = |page: usize| 5 + 2 * page;
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".to_string());
    let kids: Vec<String> = (0..pages).map(|p| format!("{} 0 R", page_id(p))).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string());
    objects.push(format!(
        "<< /Title {} /Producer (damfs sample) /CreationDate (D:{date}Z) >>",
        pdf_string(title)
    ));
    for page in 0..pages {
        let mut content = String::new();
        let (r, g, b) = (rng.below(101), rng.below(101), rng.below(101));
        let _ = writeln!(
            content,
            "{}.{:02} {}.{:02} {}.{:02} rg",
            r / 100,
            r % 100,
            g / 100,
            g % 100,
            b / 100,
            b % 100
        );
        content.push_str("50 770 495 30 re f\n0 0 0 rg\nBT /F1 20 Tf 50 730 Td\n");
        let _ = writeln!(content, "{} Tj", pdf_string(title));
        content.push_str("/F1 11 Tf 14 TL 0 -30 Td\n");
        let _ = writeln!(content, "{} Tj T*", pdf_string(&format!("Page {} of {pages}", page + 1)));
        for _ in 0..rng.between(6, 24) {
            let words = rng.between(4, 12);
            let _ = writeln!(content, "{} Tj T*", pdf_string(&sentence(rng, words)));
        }
        content.push_str("ET\n");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_id(page) + 1
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    // A binary comment on line two tells transfer tools the file is not text.
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        // Each entry is exactly 20 bytes: the space before the newline is required.
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

/// A text note titled `title`: a heading, seeded sentences and a closing line with non-ASCII
/// letters, so the file is UTF-8 rather than ASCII.
pub(crate) fn text(title: &str, rng: &mut Rng) -> Vec<u8> {
    let mut out = format!("{title}\n{}\n\n", "=".repeat(title.chars().count()));
    for _ in 0..rng.between(3, 12) {
        let words = rng.between(5, 14);
        out.push_str("- ");
        out.push_str(&sentence(rng, words));
        out.push('\n');
    }
    out.push_str("\nGrüße aus den Bergen — à bientôt — またね\n");
    out.into_bytes()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks the cross-reference table: every entry points at `<n> 0 obj`.
    pub(crate) fn assert_valid_pdf(bytes: &[u8]) {
        assert!(bytes.starts_with(b"%PDF-1.4\n"));
        assert!(bytes.ends_with(b"%%EOF\n"));
        // Everything after the binary comment on line two is ASCII.
        let text = std::str::from_utf8(&bytes[15..]).expect("ASCII after the header");
        let start: usize =
            text.rsplit("startxref\n").next().and_then(|t| t.lines().next()).unwrap().parse().unwrap();
        let table = std::str::from_utf8(&bytes[start..]).unwrap();
        assert!(table.starts_with("xref\n"));
        let count: usize = table.lines().nth(1).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        for (n, line) in table.lines().skip(3).take(count - 1).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            let expected = format!("{} 0 obj\n", n + 1);
            assert!(bytes[offset..].starts_with(expected.as_bytes()), "object {}", n + 1);
        }
    }

    #[test]
    fn pdf_cross_references_point_at_objects() {
        for seed in 0..5 {
            let bytes = pdf("Brochure (2024) \\ Café", "20240301090000", &mut Rng::for_key(seed, "pdf"));
            assert_valid_pdf(&bytes);
            assert!(String::from_utf8_lossy(&bytes).contains("(Brochure \\(2024\\) \\\\ Caf?)"));
        }
    }

    #[test]
    fn text_is_utf8_and_seeded() {
        let a = text("Release notes", &mut Rng::for_key(1, "txt"));
        let b = text("Release notes", &mut Rng::for_key(2, "txt"));
        assert!(std::str::from_utf8(&a).unwrap().starts_with("Release notes\n============="));
        assert_ne!(a, b);
    }
}
