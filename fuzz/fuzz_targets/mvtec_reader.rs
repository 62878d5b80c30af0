//! The MVTec-layout reader on hostile folders: a small tree built in a temp dir from the fuzz
//! input (names drawn mostly from the layout's own vocabulary so the fuzzer reaches deep
//! paths, plus raw names, symlinks — loops included — and tiny files: raw bytes, valid
//! PNGs of fuzzed size, and PNG headers claiming any size). Listing, opening, collecting and
//! decoding must return results or errors, never panic, hang or over-allocate.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use nexvitad::data::{collect_images, list_categories, load_mask, load_rgb, open_category};

#[derive(Arbitrary, Debug)]
enum Ext {
    Png,
    PngUpper,
    Jpg,
    Jpeg,
    Bmp,
    Txt,
    None,
}

impl Ext {
    fn suffix(&self) -> &'static str {
        match self {
            Ext::Png => ".png",
            Ext::PngUpper => ".PNG",
            Ext::Jpg => ".jpg",
            Ext::Jpeg => ".jpeg",
            Ext::Bmp => ".bmp",
            Ext::Txt => ".txt",
            Ext::None => "",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Category(u8),
    Train,
    Test,
    Good,
    GroundTruth,
    Defect(u8),
    Image(u8, Ext),
    Mask(u8),
    Hidden(u8),
    Raw(String),
}

impl Name {
    /// One path component; `None` for names that are not a single normal component.
    fn component(&self) -> Option<String> {
        let s = match self {
            Name::Category(i) => format!("cat{}", i % 3),
            Name::Train => "train".into(),
            Name::Test => "test".into(),
            Name::Good => "good".into(),
            Name::GroundTruth => "ground_truth".into(),
            Name::Defect(i) => format!("defect{}", i % 3),
            Name::Image(i, e) => format!("{:03}{}", i % 4, e.suffix()),
            Name::Mask(i) => format!("{:03}_mask.png", i % 4),
            Name::Hidden(i) => format!(".{:03}.png", i % 4),
            Name::Raw(s) => s.chars().take(40).collect(),
        };
        let ok = !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
        ok.then_some(s)
    }
}

#[derive(Arbitrary, Debug)]
enum Content {
    Empty,
    Raw(Vec<u8>),
    /// A valid 8-bit PNG of up to 16x16 pixels.
    Png { w: u8, h: u8, color: bool, pixels: Vec<u8> },
    /// A 1x1 PNG whose header claims `w` x `h` (CRC fixed up), to hit the decode limits.
    PngClaim { w: u32, h: u32 },
}

#[derive(Arbitrary, Debug)]
enum Node {
    File { path: Vec<Name>, content: Content },
    Dir { path: Vec<Name> },
    /// A relative symlink going `up` levels then down `target`: may dangle or loop.
    Symlink { path: Vec<Name>, up: u8, target: Vec<Name> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    category: String,
    extra: Vec<Name>,
    mask_w: u8,
    mask_h: u8,
}

fn rel(names: &[Name]) -> Option<PathBuf> {
    if names.is_empty() || names.len() > 6 {
        return None;
    }
    names.iter().map(Name::component).collect::<Option<Vec<_>>>().map(|v| v.iter().collect())
}

fn png(w: u32, h: u32, color: bool, pixels: &[u8]) -> Vec<u8> {
    use image::ImageEncoder;
    let ch = if color { 3 } else { 1 };
    let mut buf: Vec<u8> = pixels.iter().copied().cycle().take((w * h) as usize * ch).collect();
    buf.resize((w * h) as usize * ch, 0);
    let ty = if color { image::ExtendedColorType::Rgb8 } else { image::ExtendedColorType::L8 };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(&buf, w, h, ty).expect("encode png");
    out
}

fn content_bytes(c: &Content) -> Vec<u8> {
    match c {
        Content::Empty => Vec::new(),
        Content::Raw(b) => b.iter().copied().take(4096).collect(),
        Content::Png { w, h, color, pixels } => png(u32::from(w % 16) + 1, u32::from(h % 16) + 1, *color, pixels),
        Content::PngClaim { w, h } => {
            let mut b = png(1, 1, true, &[0]);
            // IHDR width/height sit at bytes 16..24, their chunk's CRC at 29..33.
            b[16..20].copy_from_slice(&w.to_be_bytes());
            b[20..24].copy_from_slice(&h.to_be_bytes());
            let crc = crc32fast::hash(&b[12..29]);
            b[29..33].copy_from_slice(&crc.to_be_bytes());
            b
        }
    }
}

fn build(root: &Path, nodes: &[Node]) {
    for node in nodes.iter().take(32) {
        // Failures (a parent that is a file, a name the filesystem refuses) are part of the
        // game: the tree is whatever could be made.
        match node {
            Node::File { path, content } => {
                if let Some(p) = rel(path) {
                    let p = root.join(p);
                    let _ = std::fs::create_dir_all(p.parent().unwrap_or(root));
                    let _ = std::fs::write(&p, content_bytes(content));
                }
            }
            Node::Dir { path } => {
                if let Some(p) = rel(path) {
                    let _ = std::fs::create_dir_all(root.join(p));
                }
            }
            Node::Symlink { path, up, target } => {
                if let (Some(p), Some(t)) = (rel(path), rel(target)) {
                    // Never climb above the temp root.
                    let depth = p.components().count() - 1;
                    let mut dst = PathBuf::new();
                    for _ in 0..(*up as usize).min(depth) {
                        dst.push("..");
                    }
                    dst.push(t);
                    let p = root.join(p);
                    let _ = std::fs::create_dir_all(p.parent().unwrap_or(root));
                    let _ = std::os::unix::fs::symlink(dst, &p);
                }
            }
        }
    }
}

fn sorted_by_name(v: &[PathBuf]) -> bool {
    v.windows(2).all(|w| w[0].file_name() <= w[1].file_name())
}

fuzz_target!(|inp: Input| {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    build(root, &inp.nodes);

    let mut names = list_categories(root).unwrap_or_default();
    names.push(inp.category.clone());
    for name in names.iter().take(4) {
        let Ok(cat) = open_category(root, name) else { continue };
        // What the reader promises about a category it accepts.
        assert!(!cat.train_good.is_empty());
        assert!(cat.train_good.iter().all(|p| p.is_file()));
        assert!(sorted_by_name(&cat.train_good));
        for s in &cat.test {
            assert_eq!(s.mask.is_some(), s.is_anomalous());
            assert!(s.mask.as_ref().is_none_or(|m| m.is_file()));
        }
        let _ = collect_images(&[cat.root.join("train").join("good")]);
        let images = cat.train_good.iter().chain(cat.test.iter().map(|s| &s.path));
        for path in images.take(4) {
            if let Ok(img) = load_rgb(path) {
                assert!(img.width() > 0 && img.height() > 0);
            }
        }
        for s in cat.test.iter().take(4) {
            if let Some(m) = &s.mask {
                let (w, h) = (u32::from(inp.mask_w % 17) + 1, u32::from(inp.mask_h % 17) + 1);
                if let Ok(v) = load_mask(m, w, h) {
                    assert_eq!(v.len(), (w * h) as usize);
                }
            }
        }
    }
    if let Some(p) = rel(&inp.extra) {
        let _ = collect_images(&[root.join(p), root.to_path_buf()]);
    }
});
