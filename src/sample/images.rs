//! Pictures of the sample: seeded scenes (skies with mountains, circles, stripes, blocks) drawn
//! into an RGB buffer and encoded as JPEG or PNG, and the one large PNG of noise.
//!
//! Drawing works on whole rows (gradient rows copied from a table, shapes filled as spans), so
//! the generator stays fast in debug builds, where this crate's own loops are not optimized.
//! Which tags and titles a picture earns is decided in `describe`, from the [`Scene`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

use super::layout::{Kind, Theme};
use super::rng::Rng;

/// JPEG quality of the originals. Renditions are re-encoded with other settings, so their
/// bytes differ from an original's even at equal dimensions.
const JPEG_QUALITY: u8 = 90;

/// An RGB colour.
pub(crate) type Rgb = [u8; 3];

/// The dominant colour of a picture, which becomes a `sample:colour/...` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Hues around 0°.
    Red,
    /// Hues around 30°.
    Orange,
    /// Hues around 60°.
    Yellow,
    /// Hues around 120°.
    Green,
    /// Hues around 210°.
    Blue,
    /// Hues around 290°.
    Purple,
}

impl Family {
    /// The family of a hue in degrees.
    fn of_hue(hue: u32) -> Family {
        match hue % 360 {
            0..20 | 330.. => Family::Red,
            20..45 => Family::Orange,
            45..70 => Family::Yellow,
            70..170 => Family::Green,
            170..260 => Family::Blue,
            _ => Family::Purple,
        }
    }

    /// Its tag ID.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Family::Red => "sample:colour/warm/red",
            Family::Orange => "sample:colour/warm/orange",
            Family::Yellow => "sample:colour/warm/yellow",
            Family::Green => "sample:colour/cool/green",
            Family::Blue => "sample:colour/cool/blue",
            Family::Purple => "sample:colour/cool/purple",
        }
    }

    /// Its name, capitalized to start a sentence.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Family::Red => "Red",
            Family::Orange => "Orange",
            Family::Yellow => "Yellow",
            Family::Green => "Green",
            Family::Blue => "Blue",
            Family::Purple => "Purple",
        }
    }
}

/// What a picture shows, which becomes a `sample:pattern/...` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// A sky, a sun and mountains.
    Mountains,
    /// Discs on a diagonal gradient.
    Circles,
    /// Bands of colour.
    Stripes,
    /// Rectangles on a gradient.
    Blocks,
}

impl Pattern {
    const ALL: [Pattern; 4] = [Pattern::Mountains, Pattern::Circles, Pattern::Stripes, Pattern::Blocks];

    /// Its tag ID.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Pattern::Mountains => "sample:pattern/mountains",
            Pattern::Circles => "sample:pattern/circles",
            Pattern::Stripes => "sample:pattern/stripes",
            Pattern::Blocks => "sample:pattern/blocks",
        }
    }

    /// Its name in a sentence.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Pattern::Mountains => "mountain scene",
            Pattern::Circles => "pattern of circles",
            Pattern::Stripes => "pattern of stripes",
            Pattern::Blocks => "pattern of blocks",
        }
    }
}

/// The plan of one picture, drawn from the asset's random stream.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Base hue in degrees.
    pub hue: u32,
    /// What is drawn.
    pub pattern: Pattern,
    /// Whether film grain is added (JPEG only: it makes files larger and less smooth).
    pub grain: bool,
}

impl Scene {
    /// Chooses a scene for an asset. Bulk pictures are small (32–200 px a side) to keep the
    /// sample fast; other pictures range up to 1600 px on their long side, PNGs up to 1024,
    /// and a quarter of them stand upright.
    pub(crate) fn choose(rng: &mut Rng, theme: Theme, kind: Kind, bulk: bool) -> Scene {
        let (width, height) = if bulk {
            (rng.between(32, 200), rng.between(32, 200))
        } else if theme == Theme::Panorama {
            let width = rng.between(960, 1600);
            (width, width * 10 / rng.between(25, 40))
        } else {
            // Mostly web sizes, some large: the JPEG encoder runs unoptimized in debug builds
            // (its generic code is compiled into this crate), and pixels are its cost.
            let long = match rng.below(100) {
                0..45 => rng.between(160, 480),
                45..85 => rng.between(480, 960),
                _ => rng.between(960, 1600),
            };
            let long = if kind == Kind::Png { long.min(1024) } else { long };
            let (wide, narrow) = *rng.pick(&[(4, 3), (3, 2), (16, 9), (1, 1)]);
            let short = (long * narrow / wide).max(16);
            if rng.chance(25) { (short, long) } else { (long, short) }
        };
        let hue = rng.between(0, 359);
        let outdoor = matches!(theme, Theme::Hiking | Theme::Climbing | Theme::Lakes | Theme::Panorama);
        let pattern = if outdoor && rng.chance(60) {
            Pattern::Mountains
        } else if theme == Theme::Surfing && rng.chance(50) {
            Pattern::Stripes
        } else {
            *rng.pick(&Pattern::ALL)
        };
        let grain = kind == Kind::Jpeg && !bulk && rng.chance(40);
        Scene { width, height, hue, pattern, grain }
    }

    /// The dominant colour.
    pub(crate) fn family(&self) -> Family {
        Family::of_hue(self.hue)
    }

    /// The `properties:orientation/...` tag.
    pub(crate) fn orientation_tag(&self) -> &'static str {
        if self.width > self.height * 11 / 10 {
            "properties:orientation/landscape"
        } else if self.height > self.width * 11 / 10 {
            "properties:orientation/portrait"
        } else {
            "properties:orientation/square"
        }
    }
}

/// An RGB picture being drawn.
pub(crate) struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        let (width, height) = (width as usize, height as usize);
        Canvas { width, height, rgb: vec![0; width * height * 3] }
    }

    fn row(&mut self, y: usize) -> &mut [u8] {
        &mut self.rgb[y * self.width * 3..(y + 1) * self.width * 3]
    }

    /// A gradient from `from` to `to`: along x (`dx`), along y (`dy`) or both.
    fn gradient(&mut self, from: Rgb, to: Rgb, dx: bool, dy: bool) {
        let span = if dx { self.width } else { 0 } + if dy { self.height } else { 0 };
        let table = gradient_table(from, to, span.max(1));
        for y in 0..self.height {
            let start = if dy { y } else { 0 };
            let width = self.width;
            let row = self.row(y);
            if dx {
                row.copy_from_slice(&table[start * 3..(start + width) * 3]);
            } else {
                fill_rgb(row, [table[start * 3], table[start * 3 + 1], table[start * 3 + 2]]);
            }
        }
    }

    /// Fills columns `x0..x1` of row `y` (clipped to the canvas).
    fn span(&mut self, y: i64, x0: i64, x1: i64, colour: Rgb) {
        if y < 0 || y >= self.height as i64 {
            return;
        }
        let x0 = x0.clamp(0, self.width as i64) as usize;
        let x1 = x1.clamp(0, self.width as i64) as usize;
        if x0 < x1 {
            fill_rgb(&mut self.row(y as usize)[x0 * 3..x1 * 3], colour);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb) {
        for y in y0.max(0)..y1.min(self.height as i64) {
            self.span(y, x0, x1, colour);
        }
    }

    fn disc(&mut self, cx: i64, cy: i64, radius: i64, colour: Rgb) {
        for dy in -radius..=radius {
            let half = ((radius * radius - dy * dy) as f64).sqrt() as i64;
            self.span(cy + dy, cx - half, cx + half + 1, colour);
        }
    }

    /// A mountain: a triangle from an apex down to the bottom edge, widening by
    /// `slope_per_mille` pixels on each side per 1000 rows.
    fn mountain(&mut self, apex_x: i64, apex_y: i64, slope_per_mille: i64, colour: Rgb) {
        for y in apex_y.max(0)..self.height as i64 {
            let half = (y - apex_y) * slope_per_mille / 1000;
            self.span(y, apex_x - half, apex_x + half + 1, colour);
        }
    }

    /// Flips the low bits of every byte with noise, eight bytes at a time.
    fn grain(&mut self, rng: &mut Rng) {
        const MASK: u64 = 0x0707_0707_0707_0707;
        let mut chunks = self.rgb.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let noisy = u64::from_le_bytes(word) ^ (rng.next_u64() & MASK);
            chunk.copy_from_slice(&noisy.to_le_bytes());
        }
    }
}

/// Fills `dst` (a whole number of pixels) with one colour by doubling copies.
fn fill_rgb(dst: &mut [u8], colour: Rgb) {
    if dst.len() < 3 {
        return;
    }
    dst[..3].copy_from_slice(&colour);
    let mut filled = 3;
    while filled < dst.len() {
        let n = filled.min(dst.len() - filled);
        dst.copy_within(0..n, filled);
        filled += n;
    }
}

/// `steps` pixels going from `from` to `to`.
fn gradient_table(from: Rgb, to: Rgb, steps: usize) -> Vec<u8> {
    let last = (steps - 1).max(1) as i64;
    let mut table = Vec::with_capacity(steps * 3);
    for i in 0..steps as i64 {
        for c in 0..3 {
            let (a, b) = (i64::from(from[c]), i64::from(to[c]));
            table.push((a + (b - a) * i / last) as u8);
        }
    }
    table
}

/// A colour from hue (degrees), saturation and value (percent).
fn hsv(hue: u32, saturation: u32, value: u32) -> Rgb {
    let hue = hue % 360;
    let v = value.min(100) * 255 / 100;
    let chroma = v * saturation.min(100) / 100;
    let x = chroma * (60 - (hue % 120).abs_diff(60)) / 60;
    let m = v - chroma;
    let (r, g, b) = match hue / 60 {
        0 => (chroma, x, 0),
        1 => (x, chroma, 0),
        2 => (0, chroma, x),
        3 => (0, x, chroma),
        4 => (x, 0, chroma),
        _ => (chroma, 0, x),
    };
    [(r + m) as u8, (g + m) as u8, (b + m) as u8]
}

/// Draws a scene.
pub(crate) fn render(scene: &Scene, rng: &mut Rng) -> Canvas {
    let mut canvas = Canvas::new(scene.width, scene.height);
    let (w, h) = (i64::from(scene.width), i64::from(scene.height));
    let hue = scene.hue;
    let base = hsv(hue, rng.between(55, 90), rng.between(75, 100));
    let second = hsv(hue + rng.between(25, 60), rng.between(45, 85), rng.between(60, 95));
    let light = hsv(hue, rng.between(10, 30), rng.between(92, 100));
    let dark = hsv(hue + rng.between(0, 40), rng.between(40, 70), rng.between(20, 45));
    let accent = hsv(hue + 180, rng.between(60, 90), rng.between(80, 100));
    let palette = [base, second, light, dark, accent];
    match scene.pattern {
        Pattern::Mountains => {
            canvas.gradient(light, base, false, true);
            let sun = i64::from(rng.between(4, 10)) * w.min(h) / 60;
            canvas.disc(rng.below(w as u64) as i64, h / 5, sun.max(2), accent);
            let peaks = rng.between(2, 4);
            for peak in 0..peaks {
                let shade = hsv(hue + 20 * peak, rng.between(30, 70), 55 - 10 * peak);
                let apex_y = h * i64::from(rng.between(25, 65)) / 100;
                canvas.mountain(rng.below(w as u64) as i64, apex_y, i64::from(rng.between(500, 1600)), shade);
            }
            canvas.rect(0, h - h / i64::from(rng.between(6, 10)), w, h, dark);
        }
        Pattern::Circles => {
            canvas.gradient(base, second, true, true);
            for _ in 0..rng.between(3, 8) {
                let radius = 1 + rng.below((w.min(h) / 3).max(1) as u64) as i64;
                let (cx, cy) = (rng.below(w as u64) as i64, rng.below(h as u64) as i64);
                canvas.disc(cx, cy, radius, *rng.pick(&palette));
            }
        }
        Pattern::Stripes => {
            let bands = i64::from(rng.between(4, 16));
            let vertical = rng.chance(50);
            let length = if vertical { w } else { h };
            for band in 0..bands {
                let (from, to) = (length * band / bands, length * (band + 1) / bands);
                let colour = palette[(band % 3) as usize];
                if vertical {
                    canvas.rect(from, 0, to, h, colour);
                } else {
                    canvas.rect(0, from, w, to, colour);
                }
            }
            let radius = w.min(h) / 5;
            canvas.disc(w / 2, h / 2, radius, accent);
        }
        Pattern::Blocks => {
            canvas.gradient(light, base, true, false);
            for _ in 0..rng.between(3, 8) {
                let (x0, y0) = (rng.below(w as u64) as i64, rng.below(h as u64) as i64);
                let (bw, bh) = (1 + rng.below((w / 2) as u64 + 1), 1 + rng.below((h / 2) as u64 + 1));
                canvas.rect(x0, y0, x0 + bw as i64, y0 + bh as i64, *rng.pick(&palette));
            }
        }
    }
    if scene.grain {
        canvas.grain(rng);
    }
    canvas
}

/// Encodes a picture: JPEG at [`JPEG_QUALITY`], or PNG with the default (balanced) deflate
/// level and adaptive filtering.
pub(crate) fn encode(canvas: &Canvas, kind: Kind) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let (w, h) = (canvas.width as u32, canvas.height as u32);
    let colour = image::ExtendedColorType::Rgb8;
    match kind {
        Kind::Jpeg => {
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(&canvas.rgb, w, h, colour)
        }
        _ => PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
            .write_image(&canvas.rgb, w, h, colour),
    }
    .with_context(|| format!("cannot encode a {w}x{h} picture"))?;
    Ok(out)
}

/// Width of the large PNG: wide rows for large sizes, narrower ones so that small sizes still
/// make a picture of several rows.
fn large_width(min_size: u64) -> u32 {
    if min_size >= 16 << 20 { 4096 } else { 1024 }
}

/// Writes a PNG of noise of at least `min_size` bytes to `path` and returns its length and
/// dimensions. Noise does not compress, so the PNG is stored without compression: the file
/// is the pixels plus a little framing. The length is checked on disk and the picture made
/// taller if it fell short.
pub(crate) fn write_large_png(path: &Path, min_size: u64, rng: &Rng) -> anyhow::Result<(u64, u32, u32)> {
    let width = large_width(min_size);
    let row_bytes = u64::from(width) * 3;
    let mut height = min_size.div_ceil(row_bytes).max(1);
    for _attempt in 0..3 {
        let h = u32::try_from(height).context("the large asset would be too tall")?;
        let mut pixels = vec![0u8; usize::try_from(row_bytes * height)?];
        rng.clone().fill(&mut pixels);
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        PngEncoder::new_with_quality(&mut out, CompressionType::Uncompressed, FilterType::NoFilter)
            .write_image(&pixels, width, h, image::ExtendedColorType::Rgb8)
            .with_context(|| format!("cannot encode {}", path.display()))?;
        out.flush().with_context(|| format!("cannot write {}", path.display()))?;
        drop(out);
        let len = std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?.len();
        if len >= min_size {
            return Ok((len, width, h));
        }
        height += (min_size - len).div_ceil(row_bytes) + 1;
    }
    anyhow::bail!("{}: could not reach {min_size} bytes", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_rgb_repeats_the_colour() {
        let mut buf = vec![0u8; 3 * 7];
        fill_rgb(&mut buf, [1, 2, 3]);
        assert!(buf.chunks(3).all(|px| px == [1, 2, 3]));
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0, 100, 100), [255, 0, 0]);
        assert_eq!(hsv(120, 100, 100), [0, 255, 0]);
        assert_eq!(hsv(240, 100, 100), [0, 0, 255]);
        assert_eq!(hsv(77, 0, 100), [255, 255, 255]);
    }

    #[test]
    fn scenes_render_and_decode_at_their_size() {
        let mut rng = Rng::for_key(3, "scenes");
        for (i, pattern) in Pattern::ALL.into_iter().enumerate() {
            let scene = Scene { width: 50 + i as u32, height: 40, hue: 200, pattern, grain: i % 2 == 0 };
            let canvas = render(&scene, &mut rng);
            for kind in [Kind::Jpeg, Kind::Png] {
                let bytes = encode(&canvas, kind).expect("encode");
                let decoded = image::load_from_memory(&bytes).expect("decode");
                assert_eq!((decoded.width(), decoded.height()), (50 + i as u32, 40));
            }
            let distinct: std::collections::BTreeSet<&[u8]> = canvas.rgb.chunks(3).collect();
            assert!(distinct.len() > 2, "{pattern:?} draws something");
        }
    }
}
